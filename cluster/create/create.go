// Package create creates a cluster as an ordered list of named steps —
// check the name, ensure the node images, make the network, issue the
// PKI and plan every node, start the nodes, write the kubeconfig, wait
// until the cluster is usable — run by one runner that reports progress
// and, when a step fails or the create is interrupted, undoes what the
// steps before it made (unless asked to retain it).
package create

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/internal/pki"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/registry"
)

// Images makes sure node images exist in the container engine (found
// locally, pulled or built).
type Images interface {
	Ensure(ctx context.Context, image string) error
}

// Options configure a create.
type Options struct {
	// Config is the cluster to create, defaulted (SetDefaults) and
	// validated (Validate) by the caller.
	Config *config.Cluster
	// Wait bounds how long to wait for the cluster to be ready; 0 does
	// not wait beyond the API server answering.
	Wait time.Duration
	// Retain keeps what was made when the create fails.
	Retain bool
	// KubeconfigPath is the file to merge the context into ("": none).
	KubeconfigPath string
	// Images ensures each node image exists; nil uses the images as they
	// are (a missing one fails when its container is created).
	Images Images
	// RegistryImage makes sure the local registry's image exists (for a
	// config with registry set); nil uses it as it is.
	RegistryImage registry.BuildImage
	Log           *slog.Logger
	Status        progress.Reporter
}

// Result describes the created cluster.
type Result struct {
	Name       string
	Context    string
	Server     string
	Kubeconfig string
	Nodes      []string
	Took       time.Duration
}

// state is what the steps of one create share: the options, the
// provider, and what earlier steps made or chose.
type state struct {
	opts    Options
	cfg     *config.Cluster
	p       provider.Provider
	network *provider.Network
	apiPort int
	pki     *pki.Cluster
	plan    *Plan
	kc      *clientcmdapi.Config
}

// Create creates the cluster described by opts.Config.
func Create(ctx context.Context, p provider.Provider, opts Options) (*Result, error) {
	started := time.Now()
	if opts.Status == nil {
		opts.Status = progress.Discard{}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &state{opts: opts, cfg: opts.Config, p: p}
	r := runner{status: opts.Status, retain: opts.Retain}
	if err := r.run(ctx, s, Steps(opts.Config, opts.Wait)); err != nil {
		if opts.Retain && s.network != nil {
			err = fmt.Errorf("%w\n(the cluster was kept because of --retain: inspect it with `berth status --name %s`, remove it with `berth delete cluster --name %s`)", err, s.cfg.Name, s.cfg.Name)
		}
		return nil, err
	}
	return &Result{
		Name:       s.cfg.Name,
		Context:    kubeconfig.ContextName(s.cfg.Name),
		Server:     s.plan.Server,
		Kubeconfig: opts.KubeconfigPath,
		Nodes:      s.plan.Names(),
		Took:       time.Since(started),
	}, nil
}

// Steps returns the steps that create cfg, in order.
func Steps(cfg *config.Cluster, wait time.Duration) []step {
	steps := []step{
		{name: "checking the name is free", run: checkNameFree, quiet: true},
		{name: "ensuring the node image", run: ensureImages},
	}
	if cfg.Registry != nil {
		steps = append(steps, step{name: "starting the local registry (" + registry.HostAddress(cfg.RegistryPort()) + ")", run: ensureRegistry})
	}
	steps = append(steps,
		step{name: "creating network and certificates", run: createNetworkAndPKI, undo: removeCluster},
		step{name: fmt.Sprintf("starting %d node(s)", len(cfg.Nodes)), run: startNodes},
	)
	if cfg.Registry != nil {
		steps = append(steps, step{name: "connecting the local registry", run: connectRegistry, undo: disconnectRegistry})
	}
	steps = append(steps,
		step{name: "writing the kubeconfig", run: writeKubeconfig, undo: removeKubeconfig, quiet: true},
		step{name: "waiting for the API server", run: waitAPIServer},
	)
	if cfg.Registry != nil {
		steps = append(steps, step{name: "publishing the local registry's address", run: publishRegistry, quiet: true})
	}
	if wait > 0 {
		steps = append(steps,
			step{name: fmt.Sprintf("waiting for %d node(s) to be Ready", len(cfg.Nodes)), run: waitNodesReady},
			step{name: "waiting for cluster DNS (CoreDNS)", run: waitDNS},
		)
	}
	return steps
}

// checkNameFree refuses a name in use, or one whose leftovers remain.
func checkNameFree(ctx context.Context, s *state) error {
	name := s.cfg.Name
	existing, err := s.p.ListNodes(ctx, name)
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return fmt.Errorf("cluster %q already exists: delete it with `berth delete cluster --name %s`, or choose another --name", name, name)
	}
	if c, n, v, err := s.p.ClusterObjects(ctx, name); err == nil && c+n+v > 0 {
		return fmt.Errorf("leftovers of a cluster %q exist (%d networks, %d volumes): remove them with `berth delete cluster --name %s`", name, n, v, name)
	}
	return nil
}

// ensureImages makes sure every node image exists, each once.
func ensureImages(ctx context.Context, s *state) error {
	if s.opts.Images == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, n := range s.cfg.Nodes {
		if seen[n.Image] {
			continue
		}
		seen[n.Image] = true
		if err := s.opts.Images.Ensure(ctx, n.Image); err != nil {
			return err
		}
	}
	return nil
}

// createNetworkAndPKI makes the cluster network, chooses the API port,
// issues the cluster's authorities and plans every node. Its undo removes
// everything of the cluster: every later object hangs off this network.
func createNetworkAndPKI(ctx context.Context, s *state) error {
	var err error
	if s.pki, err = pki.NewCluster(); err != nil {
		return fmt.Errorf("creating the cluster CA: %w", err)
	}
	s.apiPort = s.cfg.Networking.APIServerPort
	if s.apiPort == 0 {
		if s.apiPort, err = freePort(s.cfg.Networking.APIServerAddress); err != nil {
			return err
		}
	}
	if s.network, err = s.p.CreateNetwork(ctx, s.cfg.Name); err != nil {
		return err
	}
	s.plan, err = plan(PlanInput{Config: s.cfg, Network: s.network, PKI: s.pki, APIPort: s.apiPort})
	return err
}

func removeCluster(ctx context.Context, s *state) error {
	return s.p.DeleteCluster(ctx, s.cfg.Name)
}

// startNodes creates every node container (and helper) in parallel.
func startNodes(ctx context.Context, s *state) error {
	specs := append([]provider.NodeSpec(nil), s.plan.Helpers...)
	for _, n := range s.plan.Nodes {
		specs = append(specs, n.Spec)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, spec := range specs {
		g.Go(func() error { return s.p.CreateNode(gctx, spec) })
	}
	return g.Wait()
}

// writeKubeconfig merges the cluster's context into the user's kubeconfig
// and makes it current.
func writeKubeconfig(_ context.Context, s *state) error {
	key, err := s.plan.Admin.KeyPEM()
	if err != nil {
		return fmt.Errorf("encoding the admin key: %w", err)
	}
	s.kc = kubeconfig.Build(kubeconfig.ContextName(s.cfg.Name), s.plan.Server, s.pki.CA.CertPEM(), s.plan.Admin.CertPEM(), key)
	if s.opts.KubeconfigPath == "" {
		return nil
	}
	if err := kubeconfig.Merge(s.opts.KubeconfigPath, s.kc); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", s.opts.KubeconfigPath, err)
	}
	return nil
}

func removeKubeconfig(_ context.Context, s *state) error {
	if s.opts.KubeconfigPath == "" {
		return nil
	}
	return kubeconfig.Remove(s.opts.KubeconfigPath, kubeconfig.ContextName(s.cfg.Name))
}

// freePort asks the kernel for a free TCP port on addr.
func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(hostAddress(addr), "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port for the API server on %s: %w", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
