// Package create creates a cluster as an ordered list of named steps —
// check the name, ensure the node images, make the network, issue the
// PKI and plan every node, start the nodes, write the kubeconfig, wait
// until the cluster is usable — run by one runner that reports progress
// and, when a step fails or the create is interrupted, undoes what the
// steps before it made (unless asked to retain it).
package create

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	"github.com/berth-dev/berth/cluster/sriov"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
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
	// PKI, when set, are the authorities to issue every certificate
	// from instead of fresh ones: a cluster made from another's snapshot
	// keeps its CA, etcd CA and service-account key, so that the tokens
	// and CA bundles stored in its objects stay valid (see
	// cluster/snapshot.CreateFrom). Every leaf certificate is issued
	// anew, for this cluster's names and addresses.
	PKI    *pki.Cluster
	Log    *slog.Logger
	Status progress.Reporter
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
	// createID labels everything this create makes
	// (provider.LabelCreateID), so its undo removes exactly that.
	createID string
	// vfs are the SR-IOV VFs each node gets (reserveVFs).
	vfs [][]nodeconfig.VF
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
	s := &state{opts: opts, cfg: opts.Config, p: p, createID: newCreateID()}
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
	}
	if cfg.HasSRIOV() {
		// Before anything is made: a config asking for VFs the host
		// does not have is refused here, naming the field.
		steps = append(steps, step{name: "choosing SR-IOV VFs", run: reserveVFs})
	}
	steps = append(steps, step{name: "ensuring the node image", run: ensureImages})
	if cfg.Registry != nil {
		steps = append(steps, step{name: "starting the local registry (" + registry.HostAddress(cfg.RegistryPort()) + ")", run: ensureRegistry})
	}
	steps = append(steps,
		step{name: "creating network and certificates", run: createNetworkAndPKI, undo: removeCluster},
		step{name: fmt.Sprintf("starting %d node(s)", len(cfg.Nodes)), run: startNodes},
	)
	if cfg.HasSRIOV() {
		steps = append(steps, step{name: "attaching SR-IOV VFs to the nodes", run: attachVFs, undo: reclaimVFs})
	}
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
	// Last: until this mark exists, the cluster is half-made (a create
	// killed before it could undo anything); `berth get clusters` says so.
	steps = append(steps, step{name: "marking the cluster complete", run: markComplete, quiet: true})
	return steps
}

// reserveVFs chooses each node's VFs among those no berth node holds.
func reserveVFs(ctx context.Context, s *state) error {
	all, err := s.p.ListNodes(ctx, "")
	if err != nil {
		return err
	}
	var labels []map[string]string
	for _, n := range all {
		labels = append(labels, n.Labels)
	}
	taken, err := sriov.TakenFromLabels(labels)
	if err != nil {
		return err
	}
	s.vfs, err = sriov.HostFromEnv().Plan(ctx, s.cfg, taken)
	return err
}

// plannedNodes are the planned node containers as the provider lists
// them (name and labels).
func (s *state) plannedNodes() []provider.Node {
	var nodes []provider.Node
	for _, n := range s.plan.Nodes {
		nodes = append(nodes, provider.Node{Name: n.Spec.Name, Cluster: n.Spec.Cluster, Role: n.Spec.Role, Labels: n.Spec.Labels})
	}
	return nodes
}

// attachVFs moves each node's netdevice VFs into it.
func attachVFs(ctx context.Context, s *state) error {
	return sriov.AttachNodes(ctx, s.p, s.plannedNodes())
}

// reclaimVFs gives the VFs back to the host before the nodes are removed.
func reclaimVFs(ctx context.Context, s *state) error {
	return sriov.ReclaimNodes(ctx, s.p, s.plannedNodes())
}

func markComplete(ctx context.Context, s *state) error {
	return s.p.MarkComplete(ctx, s.cfg.Name)
}

// newCreateID returns a random ID for one create.
func newCreateID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
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
	if s.pki = s.opts.PKI; s.pki == nil {
		if s.pki, err = pki.NewCluster(); err != nil {
			return fmt.Errorf("creating the cluster CA: %w", err)
		}
	}
	s.apiPort = s.cfg.Networking.APIServerPort
	if s.apiPort == 0 {
		if s.apiPort, err = freePort(s.cfg.Networking.APIServerAddress); err != nil {
			return err
		}
	}
	if s.network, err = s.p.CreateNetwork(ctx, s.cfg.Name, map[string]string{provider.LabelCreateID: s.createID}); err != nil {
		if errors.Is(err, provider.ErrExists) {
			return fmt.Errorf("cluster %q is being created by another berth, or exists: %w\n(see `berth get clusters`; choose another --name)", s.cfg.Name, err)
		}
		return err
	}
	s.plan, err = plan(PlanInput{Config: s.cfg, Network: s.network, PKI: s.pki, APIPort: s.apiPort, VFs: s.vfs})
	return err
}

// removeCluster removes what this create made: its network, nodes and
// their volumes (all labelled with its create ID), never what another
// create of the same name made. Nothing when the network was not made
// (the name was taken).
func removeCluster(ctx context.Context, s *state) error {
	if s.network == nil {
		return nil
	}
	return s.p.DeleteCreated(ctx, s.cfg.Name, s.createID)
}

// startNodes creates every node container (and helper) in parallel.
func startNodes(ctx context.Context, s *state) error {
	// Every node at once: nodes run with an explicit capability set, so
	// there is no privilege mode to find out on a first node.
	var specs []provider.NodeSpec
	for _, h := range s.plan.Helpers {
		specs = append(specs, s.labelled(h))
	}
	for _, n := range s.plan.Nodes {
		specs = append(specs, s.labelled(n.Spec))
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, spec := range specs {
		g.Go(func() error { return s.p.CreateNode(gctx, spec) })
	}
	if err := g.Wait(); err != nil {
		if errors.Is(err, provider.ErrExists) {
			return fmt.Errorf("cluster %q is being created by another berth: %w\n(see `berth get clusters`; choose another --name)", s.cfg.Name, err)
		}
		return err
	}
	return nil
}

// labelled returns spec with this create's ID among its labels.
func (s *state) labelled(spec provider.NodeSpec) provider.NodeSpec {
	labels := map[string]string{provider.LabelCreateID: s.createID}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	spec.Labels = labels
	return spec
}

// writeKubeconfig merges the cluster's context into the user's kubeconfig
// and makes it current.
func writeKubeconfig(ctx context.Context, s *state) error {
	key, err := s.plan.Admin.KeyPEM()
	if err != nil {
		return fmt.Errorf("encoding the admin key: %w", err)
	}
	s.kc = kubeconfig.Build(kubeconfig.ContextName(s.cfg.Name), s.plan.Server, s.pki.CA.CertPEM(), s.plan.Admin.CertPEM(), key)
	if s.opts.KubeconfigPath == "" {
		return nil
	}
	if err := kubeconfig.Merge(ctx, s.opts.KubeconfigPath, s.kc); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", s.opts.KubeconfigPath, err)
	}
	return nil
}

func removeKubeconfig(ctx context.Context, s *state) error {
	if s.opts.KubeconfigPath == "" {
		return nil
	}
	return kubeconfig.Remove(ctx, s.opts.KubeconfigPath, kubeconfig.ContextName(s.cfg.Name))
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
