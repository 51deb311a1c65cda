package create

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/internal/pki"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/registry"
	"github.com/berth-dev/berth/cluster/sriov"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Plan is everything a create makes, computed before anything is made
// beyond the network: each node's container spec and configuration, the
// API load balancer (when there are several control planes) and the
// endpoints clients use.
type Plan struct {
	Nodes []PlannedNode
	// Helpers are containers that are not Kubernetes nodes (the API load
	// balancer in front of several control planes).
	Helpers []provider.NodeSpec
	// Server is the API server URL clients on the host use.
	Server string
	// Admin is the cluster-admin identity: the host's kubeconfig and each
	// control plane's admin.conf hold the same one, so `get kubeconfig`
	// returns what create merged.
	Admin *pki.KeyPair
}

// PlannedNode is one node container and the configuration berth-node
// reads in it.
type PlannedNode struct {
	Spec provider.NodeSpec
	Node *nodeconfig.Node
}

// Names returns the node names in order.
func (p *Plan) Names() []string {
	var names []string
	for _, n := range p.Nodes {
		names = append(names, n.Spec.Name)
	}
	return names
}

// PlanInput is what a plan is computed from: the defaulted, validated
// configuration and the three things made or chosen before planning.
type PlanInput struct {
	Config  *config.Cluster
	Network *provider.Network
	PKI     *pki.Cluster
	// APIPort is the host port the API server is published on.
	APIPort int
	// VFs are the SR-IOV VFs each node gets (VFs[i] for Config.Nodes[i];
	// nil: none), chosen by sriov.Host.Plan.
	VFs [][]nodeconfig.VF
}

// plan computes every node's spec, configuration and files. It makes
// nothing and talks to nothing: everything it needs is in in.
func plan(in PlanInput) (*Plan, error) {
	cfg := in.Config
	if len(cfg.Nodes) == 0 {
		return nil, fmt.Errorf("nodes: a cluster needs at least one node")
	}
	names := cfg.NodeNames()
	var cpIPs []net.IP
	var etcdMembers []string
	ips := make([]net.IP, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		ips[i] = in.Network.NodeIP(i)
		if n.Role == nodeconfig.RoleControlPlane {
			cpIPs = append(cpIPs, ips[i])
			etcdMembers = append(etcdMembers, fmt.Sprintf("%s=https://%s:2380", names[i], ips[i]))
		}
	}
	if len(cpIPs) == 0 {
		return nil, fmt.Errorf("nodes: a cluster needs at least one node with role %s", nodeconfig.RoleControlPlane)
	}
	endpoint := fmt.Sprintf("https://%s:%d", cpIPs[0], nodeconfig.APIServerPort)
	listen := cfg.Networking.APIServerAddress
	out := &Plan{Server: fmt.Sprintf("https://%s", net.JoinHostPort(hostAddress(listen), strconv.Itoa(in.APIPort)))}

	// Several control planes sit behind a load balancer container: the
	// host's kubeconfig, the kubelets and kube-proxy reach the API through
	// it, so losing one control-plane node goes unnoticed.
	var lb *provider.NodeSpec
	sanIPs := append([]net.IP(nil), cpIPs...)
	if len(cpIPs) > 1 {
		lbIP := in.Network.NodeIP(len(cfg.Nodes))
		endpoint = fmt.Sprintf("https://%s:%d", lbIP, nodeconfig.APIServerPort)
		sanIPs = append(sanIPs, lbIP)
		var backends []string
		for _, ip := range cpIPs {
			backends = append(backends, net.JoinHostPort(ip.String(), strconv.Itoa(nodeconfig.APIServerPort)))
		}
		lb = &provider.NodeSpec{
			Name:    cfg.Name + "-" + nodeconfig.RoleLoadBalancer,
			Cluster: cfg.Name,
			Role:    nodeconfig.RoleLoadBalancer,
			Image:   cfg.Nodes[0].Image,
			Network: in.Network.Name,
			IP:      lbIP,
			Helper:  true,
			Args:    []string{"loadbalancer", "--listen", fmt.Sprintf(":%d", nodeconfig.APIServerPort), "--backends", strings.Join(backends, ",")},
		}
	}
	sans, sanAddrs := pki.APIServerSANs(cfg.Networking.DNSDomain, cfg.ServiceIP(1), sanIPs, []string{listen})
	admin, err := in.PKI.Client("kubernetes-admin", "system:masters")
	if err != nil {
		return nil, fmt.Errorf("issuing the admin certificate: %w", err)
	}
	out.Admin = admin

	hasWorkers := false
	for _, n := range cfg.Nodes {
		hasWorkers = hasWorkers || n.Role == nodeconfig.RoleWorker
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
	// MetalLB's address pool on the cluster network (empty: no MetalLB):
	// by default the network's upper half, which Docker never hands out.
	taken := append([]net.IP{in.Network.Gateway}, ips...)
	if lb != nil {
		taken = append(taken, lb.IP)
	}
	lbPool, err := cfg.LoadBalancerPoolFor(in.Network.Subnet, taken)
	if err != nil {
		return nil, err
	}
	apiPublished := lb != nil
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
			KubernetesVersion:  cfg.KubernetesVersion,
			LoadBalancerPool:   lbPool,
		}
		var vfs []nodeconfig.VF
		if i < len(in.VFs) {
			vfs = in.VFs[i]
		}
		nc.SRIOV = vfs
		if n.Role == nodeconfig.RoleControlPlane {
			nc.PodCIDRs = podCIDRs
			if hasWorkers {
				nc.Taints = []string{"node-role.kubernetes.io/control-plane:NoSchedule"}
			}
		}
		files, err := nodeFiles(in.PKI, admin, nc, sans, sanAddrs)
		if err != nil {
			return nil, err
		}
		spec := provider.NodeSpec{
			Name:    names[i],
			Cluster: cfg.Name,
			Role:    n.Role,
			Image:   n.Image,
			Network: in.Network.Name,
			IP:      ips[i],
			Files:   files,
			Labels:  map[string]string{nodeconfig.LabelKubernetesVersion: cfg.KubernetesVersion},
		}
		if len(vfs) > 0 {
			// The label is the record of which VFs the node holds: for
			// start, stop and delete, and for other clusters' plans.
			label, err := nodeconfig.FormatVFLabel(vfs)
			if err != nil {
				return nil, err
			}
			spec.Labels[nodeconfig.LabelSRIOV] = label
			spec.Devices = sriov.VFIODevices(vfs)
		}
		if port := cfg.RegistryPort(); port > 0 {
			// containerd's certs.d: localhost:<port> is the local registry.
			registry.UseIn(&spec, port)
		}
		for _, pm := range n.ExtraPortMappings {
			spec.Ports = append(spec.Ports, provider.PortMapping{ListenAddress: pm.ListenAddress, HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: pm.Protocol})
		}
		for _, m := range n.ExtraMounts {
			spec.Mounts = append(spec.Mounts, provider.Mount{HostPath: m.HostPath, ContainerPath: m.ContainerPath, ReadOnly: m.ReadOnly, Propagation: m.Propagation})
		}
		if n.Role == nodeconfig.RoleControlPlane && !apiPublished {
			apiPublished = true
			publishAPI(&spec, listen, in.APIPort)
		}
		out.Nodes = append(out.Nodes, PlannedNode{Spec: spec, Node: nc})
	}
	if lb != nil {
		publishAPI(lb, listen, in.APIPort)
		out.Helpers = append(out.Helpers, *lb)
	}
	return out, nil
}

// publishAPI makes spec publish the API server port on the host.
func publishAPI(spec *provider.NodeSpec, listen string, port int) {
	spec.Ports = append(spec.Ports, provider.PortMapping{ListenAddress: listen, HostPort: port, ContainerPort: nodeconfig.APIServerPort, Protocol: "tcp"})
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[nodeconfig.LabelAPIServerPort] = strconv.Itoa(port)
	spec.Labels[nodeconfig.LabelAPIServerAddr] = hostAddress(listen)
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
