// Package create creates a cluster: it plans the nodes, issues the PKI on
// the host, makes the network and node containers, merges the kubeconfig
// and waits until the cluster is usable. A create that fails or is
// interrupted removes everything it made, unless asked to retain it.
package create

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/nodeconfig"
	"github.com/berth-dev/berth/cluster/pki"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	dockerprovider "github.com/berth-dev/berth/cluster/provider/docker"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// Options configure a create.
type Options struct {
	Config *config.Cluster
	// Wait bounds how long to wait for the cluster to be ready; 0 does
	// not wait beyond the API server answering.
	Wait time.Duration
	// Retain keeps what was made when the create fails.
	Retain bool
	// KubeconfigPath is the file to merge the context into.
	KubeconfigPath string
	// EnsureImage makes sure a node image exists (building it if needed).
	EnsureImage func(ctx context.Context, image string) error
	Log         *slog.Logger
	Status      progress.Reporter
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

// Create creates the cluster described by opts.Config.
func Create(ctx context.Context, p provider.Provider, opts Options) (res *Result, err error) {
	started := time.Now()
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Status == nil {
		opts.Status = progress.Discard{}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	existing, err := p.ListNodes(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("cluster %q already exists: delete it with `berth delete cluster --name %s`, or choose another --name", cfg.Name, cfg.Name)
	}
	if c, n, v, err := p.ClusterObjects(ctx, cfg.Name); err == nil && c+n+v > 0 {
		return nil, fmt.Errorf("leftovers of a cluster %q exist (%d networks, %d volumes): remove them with `berth delete cluster --name %s`", cfg.Name, n, v, cfg.Name)
	}
	if opts.EnsureImage != nil {
		seen := map[string]bool{}
		for _, n := range cfg.Nodes {
			if seen[n.Image] {
				continue
			}
			seen[n.Image] = true
			if err := opts.EnsureImage(ctx, n.Image); err != nil {
				return nil, err
			}
		}
	}

	// From here on, anything made is removed again on failure.
	defer func() {
		if err == nil || opts.Retain {
			if err != nil {
				err = fmt.Errorf("%w\n(the cluster was kept because of --retain; inspect it with `docker ps -a --filter label=%s=%s`, remove it with `berth delete cluster --name %s`)", err, provider.LabelCluster, cfg.Name, cfg.Name)
			}
			return
		}
		cleanup := context.WithoutCancel(ctx)
		done := opts.Status.Step("removing what was made")
		delErr := p.DeleteCluster(cleanup, cfg.Name)
		if opts.KubeconfigPath != "" {
			delErr = errors.Join(delErr, kubeconfig.Remove(opts.KubeconfigPath, kubeconfig.ContextName(cfg.Name)))
		}
		done(delErr)
		if delErr != nil {
			err = fmt.Errorf("%w\n(cleaning up also failed: %v)", err, delErr)
		}
	}()

	plan, err := planCluster(ctx, p, cfg, opts.Status)
	if err != nil {
		return nil, err
	}
	if err := progress.Run(opts.Status, fmt.Sprintf("starting %d node(s)", len(plan.nodes)), func() error {
		return startNodes(ctx, p, plan)
	}); err != nil {
		return nil, err
	}

	server := fmt.Sprintf("https://%s", net.JoinHostPort(hostAddress(cfg.Networking.APIServerAddress), strconv.Itoa(plan.apiPort)))
	ctxName := kubeconfig.ContextName(cfg.Name)
	admin, err := plan.pki.Client("kubernetes-admin", "system:masters")
	if err != nil {
		return nil, err
	}
	adminKey, err := admin.KeyPEM()
	if err != nil {
		return nil, err
	}
	kc := kubeconfig.Build(ctxName, server, plan.pki.CA.CertPEM(), admin.CertPEM(), adminKey)
	if opts.KubeconfigPath != "" {
		if err := kubeconfig.Merge(opts.KubeconfigPath, kc); err != nil {
			return nil, fmt.Errorf("writing kubeconfig: %w", err)
		}
	}
	if err := waitReady(ctx, kc, plan, opts); err != nil {
		return nil, err
	}
	return &Result{
		Name:       cfg.Name,
		Context:    ctxName,
		Server:     server,
		Kubeconfig: opts.KubeconfigPath,
		Nodes:      plan.names(),
		Took:       time.Since(started),
	}, nil
}

// hostAddress is the address clients on the host dial: a wildcard listen
// address is reached through loopback.
func hostAddress(listen string) string {
	ip := net.ParseIP(listen)
	if ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return listen
}

type plannedNode struct {
	spec provider.NodeSpec
	node *nodeconfig.Node
}

type clusterPlan struct {
	cfg     *config.Cluster
	pki     *pki.Cluster
	network *provider.Network
	apiPort int
	nodes   []plannedNode
	// helpers are containers that are not nodes (the API load balancer).
	helpers []provider.NodeSpec
}

// publishAPI makes spec publish the API server port on the host.
func publishAPI(spec *provider.NodeSpec, cfg *config.Cluster, port int) {
	spec.Ports = append(spec.Ports, provider.PortMapping{ListenAddress: cfg.Networking.APIServerAddress, HostPort: port, ContainerPort: nodeconfig.APIServerPort, Protocol: "tcp"})
	spec.Labels = map[string]string{
		provider.LabelAPIServerPort: strconv.Itoa(port),
		provider.LabelAPIServerAddr: hostAddress(cfg.Networking.APIServerAddress),
	}
}

func (p *clusterPlan) names() []string {
	var names []string
	for _, n := range p.nodes {
		names = append(names, n.spec.Name)
	}
	return names
}

// planCluster issues the PKI, makes the network and computes each node's
// container spec and configuration.
func planCluster(ctx context.Context, p provider.Provider, cfg *config.Cluster, status progress.Reporter) (*clusterPlan, error) {
	plan := &clusterPlan{cfg: cfg}
	err := progress.Run(status, "creating network and certificates", func() error {
		var err error
		if plan.pki, err = pki.NewCluster(); err != nil {
			return fmt.Errorf("creating the cluster CA: %w", err)
		}
		if plan.network, err = p.CreateNetwork(ctx, cfg.Name); err != nil {
			return err
		}
		plan.apiPort = cfg.Networking.APIServerPort
		if plan.apiPort == 0 {
			if plan.apiPort, err = freePort(cfg.Networking.APIServerAddress); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := cfg.NodeNames()
	var cpIPs []net.IP
	var etcdMembers []string
	ips := make([]net.IP, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		ips[i] = dockerprovider.NodeIP(plan.network, i)
		if n.Role == config.ControlPlaneRole {
			cpIPs = append(cpIPs, ips[i])
			etcdMembers = append(etcdMembers, fmt.Sprintf("%s=http://%s:2380", names[i], ips[i]))
		}
	}
	endpoint := fmt.Sprintf("https://%s:%d", cpIPs[0], nodeconfig.APIServerPort)
	// Several control planes sit behind a load balancer container: the
	// host's kubeconfig, the kubelets and kube-proxy reach the API through
	// it, so losing one control-plane node goes unnoticed.
	var lb *provider.NodeSpec
	sanIPsExtra := []net.IP{}
	if len(cpIPs) > 1 {
		lbIP := dockerprovider.NodeIP(plan.network, len(cfg.Nodes))
		endpoint = fmt.Sprintf("https://%s:%d", lbIP, nodeconfig.APIServerPort)
		sanIPsExtra = append(sanIPsExtra, lbIP)
		var backends []string
		for _, ip := range cpIPs {
			backends = append(backends, fmt.Sprintf("%s:%d", ip, nodeconfig.APIServerPort))
		}
		lb = &provider.NodeSpec{
			Name:    cfg.Name + "-" + provider.RoleLoadBalancer,
			Cluster: cfg.Name,
			Role:    provider.RoleLoadBalancer,
			Image:   cfg.Nodes[0].Image,
			Network: plan.network.Name,
			IP:      lbIP,
			Helper:  true,
			Args:    []string{"loadbalancer", "--listen", fmt.Sprintf(":%d", nodeconfig.APIServerPort), "--backends", strings.Join(backends, ",")},
		}
	}
	sans, sanIPs := pki.APIServerSANs(cfg.Networking.DNSDomain, cfg.ServiceIP(1), append(cpIPs, sanIPsExtra...), []string{cfg.Networking.APIServerAddress})
	hasWorkers := false
	for _, n := range cfg.Nodes {
		hasWorkers = hasWorkers || n.Role == config.WorkerRole
	}
	// Each node's PodCIDR, chosen here (in node order) rather than by the
	// controller-manager, so every node can configure its pod network
	// before its kubelet starts.
	podCIDRs := map[string]string{}
	for i := range cfg.Nodes {
		cidr, err := nodeconfig.PodCIDRFor(cfg.Networking.PodSubnet, i)
		if err != nil {
			return nil, fmt.Errorf("networking.podSubnet: %w", err)
		}
		podCIDRs[names[i]] = cidr
	}
	first := true
	for i, n := range cfg.Nodes {
		nc := &nodeconfig.Node{
			Cluster:            cfg.Name,
			Name:               names[i],
			Role:               n.Role,
			IP:                 ips[i].String(),
			APIServerEndpoint:  endpoint,
			EtcdInitialCluster: strings.Join(etcdMembers, ","),
			PodSubnet:          cfg.Networking.PodSubnet,
			PodCIDR:            podCIDRs[names[i]],
			ServiceSubnet:      cfg.Networking.ServiceSubnet,
			DNSServiceIP:       cfg.ServiceIP(10).String(),
			ClusterDomain:      cfg.Networking.DNSDomain,
			KubeProxyMode:      cfg.Networking.KubeProxyMode,
			DisableDefaultCNI:  cfg.Networking.DisableDefaultCNI,
			Labels:             n.Labels,
			FeatureGates:       cfg.FeatureGates,
			RuntimeConfig:      cfg.RuntimeConfig,
			KubernetesVersion:  versions.Kubernetes,
		}
		if n.Role == config.ControlPlaneRole {
			nc.PodCIDRs = podCIDRs
		}
		if n.Role == config.ControlPlaneRole && hasWorkers {
			nc.Taints = []string{"node-role.kubernetes.io/control-plane:NoSchedule"}
		}
		files, err := nodeFiles(plan.pki, nc, sans, sanIPs)
		if err != nil {
			return nil, err
		}
		spec := provider.NodeSpec{
			Name:    names[i],
			Cluster: cfg.Name,
			Role:    n.Role,
			Image:   n.Image,
			Network: plan.network.Name,
			IP:      ips[i],
			Files:   files,
		}
		for _, pm := range n.ExtraPortMappings {
			spec.Ports = append(spec.Ports, provider.PortMapping{ListenAddress: pm.ListenAddress, HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: pm.Protocol})
		}
		for _, m := range n.ExtraMounts {
			spec.Mounts = append(spec.Mounts, provider.Mount{HostPath: m.HostPath, ContainerPath: m.ContainerPath, ReadOnly: m.ReadOnly, Propagation: m.Propagation})
		}
		if n.Role == config.ControlPlaneRole && first && lb == nil {
			first = false
			publishAPI(&spec, cfg, plan.apiPort)
		}
		plan.nodes = append(plan.nodes, plannedNode{spec: spec, node: nc})
	}
	if lb != nil {
		publishAPI(lb, cfg, plan.apiPort)
		plan.helpers = append(plan.helpers, *lb)
	}
	return plan, nil
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

// startNodes creates every node container in parallel. The first one is
// created alone when the engine's privilege mode is not yet known, so the
// fallback is decided once.
func startNodes(ctx context.Context, p provider.Provider, plan *clusterPlan) error {
	if len(plan.nodes) == 0 {
		return nil
	}
	if err := p.CreateNode(ctx, plan.nodes[0].spec); err != nil {
		return err
	}
	specs := append([]provider.NodeSpec(nil), plan.helpers...)
	for _, n := range plan.nodes[1:] {
		specs = append(specs, n.spec)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.CreateNode(ctx, specs[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
