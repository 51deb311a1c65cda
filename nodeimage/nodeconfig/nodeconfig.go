// Package nodeconfig is the contract between the berth CLI on the host and
// berth-node inside a node container: the CLI writes one Node as JSON to
// Path before the container starts, and berth-node derives every
// component's configuration from it. It also names what both sides share:
// node roles and the labels on everything berth makes.
//
// It is its own module with no dependencies, so the CLI's module and the
// node binary's module (which builds Kubernetes) both import it without
// pulling in each other's dependency sets. It lives under nodeimage/
// because it is the node image's input contract; cluster/ imports it,
// never the other way round.
package nodeconfig

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
)

// Path is where the node configuration lives inside a node container.
const Path = "/etc/berth/node.json"

// Roles a node can have.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
)

// Well-known files inside a node container. The CLI writes the PKI and
// kubeconfigs there; berth-node reads them.
const (
	PKIDir                      = "/etc/kubernetes/pki"
	AdminKubeconfig             = "/etc/kubernetes/admin.conf"
	ControllerManagerKubeconfig = "/etc/kubernetes/controller-manager.conf"
	SchedulerKubeconfig         = "/etc/kubernetes/scheduler.conf"
	KubeletKubeconfig           = "/etc/kubernetes/kubelet.conf"
	KubeProxyKubeconfig         = "/etc/kubernetes/kube-proxy.conf"
)

// APIServerPort is the port the API server listens on inside every
// control-plane node.
const APIServerPort = 6443

// Node is everything berth-node needs to know to run one node.
type Node struct {
	// Cluster is the berth cluster name.
	Cluster string `json:"cluster"`
	// Name is the Kubernetes node name (also the container's hostname).
	Name string `json:"name"`
	// Role is RoleControlPlane or RoleWorker.
	Role string `json:"role"`
	// IP is the node's static address on the cluster network.
	IP string `json:"ip"`
	// APIServerEndpoint is the https URL kubelet and kube-proxy use.
	APIServerEndpoint string `json:"apiServerEndpoint"`
	// Etcd lists the etcd members (control-plane nodes) as name=peerURL.
	EtcdInitialCluster string `json:"etcdInitialCluster,omitempty"`
	// PodSubnet is the cluster-wide pod CIDR; each node gets a /24 of it.
	PodSubnet string `json:"podSubnet"`
	// PodCIDR is this node's /24 of PodSubnet. berth chooses it at create
	// (PodCIDRFor, in node order) instead of the controller-manager's node
	// IPAM, so the node's CNI configuration exists before its kubelet
	// starts and the node is Ready as soon as it registers.
	PodCIDR string `json:"podCIDR,omitempty"`
	// PodCIDRs, on control-plane nodes, maps every node's name to its
	// PodCIDR: the control plane writes them into each Node's spec.
	PodCIDRs map[string]string `json:"podCIDRs,omitempty"`
	// ServiceSubnet is the ClusterIP range.
	ServiceSubnet string `json:"serviceSubnet"`
	// DNSServiceIP is the ClusterIP of kube-dns.
	DNSServiceIP string `json:"dnsServiceIP"`
	// ClusterDomain is the DNS domain of the cluster.
	ClusterDomain string `json:"clusterDomain"`
	// KubeProxyMode is nftables, iptables or none.
	KubeProxyMode string `json:"kubeProxyMode"`
	// DisableDefaultCNI leaves pod networking to the user.
	DisableDefaultCNI bool `json:"disableDefaultCNI,omitempty"`
	// Labels are extra node labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Taints are registered by the kubelet, as key=value:Effect.
	Taints []string `json:"taints,omitempty"`
	// FeatureGates are passed to every component.
	FeatureGates map[string]bool `json:"featureGates,omitempty"`
	// RuntimeConfig is passed to the API server's --runtime-config.
	RuntimeConfig map[string]string `json:"runtimeConfig,omitempty"`
	// KubernetesVersion is informational (the image decides what runs).
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// LoadBalancerPool is the address range ("first-last", on the cluster
	// network) MetalLB gives LoadBalancer Services; empty leaves MetalLB
	// out.
	LoadBalancerPool string `json:"loadBalancerPool,omitempty"`
	// SRIOV lists the SR-IOV virtual functions the host gives this node
	// (sriov.go): berth-node serves them to the kubelet as extended
	// resources and, in netdevice mode, moves them into the pods that were
	// allocated them.
	SRIOV []VF `json:"sriov,omitempty"`
}

// IsControlPlane reports whether the node runs the control plane.
func (n *Node) IsControlPlane() bool { return n.Role == RoleControlPlane }

// Validate checks the fields berth-node cannot work without.
func (n *Node) Validate() error {
	if n.Name == "" {
		return fmt.Errorf("node config: name is empty")
	}
	if n.Role != RoleControlPlane && n.Role != RoleWorker {
		return fmt.Errorf("node config: role %q is neither %q nor %q", n.Role, RoleControlPlane, RoleWorker)
	}
	if net.ParseIP(n.IP) == nil {
		return fmt.Errorf("node config: ip %q is not an IP address", n.IP)
	}
	for field, cidr := range map[string]string{"podSubnet": n.PodSubnet, "serviceSubnet": n.ServiceSubnet} {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return fmt.Errorf("node config: %s: %w", field, err)
		}
	}
	if n.PodCIDR != "" {
		if _, _, err := net.ParseCIDR(n.PodCIDR); err != nil {
			return fmt.Errorf("node config: podCIDR: %w", err)
		}
	}
	if net.ParseIP(n.DNSServiceIP) == nil {
		return fmt.Errorf("node config: dnsServiceIP %q is not an IP address", n.DNSServiceIP)
	}
	if n.APIServerEndpoint == "" {
		return fmt.Errorf("node config: apiServerEndpoint is empty")
	}
	if n.LoadBalancerPool != "" {
		first, last, ok := strings.Cut(n.LoadBalancerPool, "-")
		a, b := net.ParseIP(first), net.ParseIP(last)
		if !ok || a.To4() == nil || b.To4() == nil {
			return fmt.Errorf("node config: loadBalancerPool %q is not an IPv4 range first-last", n.LoadBalancerPool)
		}
	}
	for i := range n.SRIOV {
		if err := n.SRIOV[i].Validate(); err != nil {
			return fmt.Errorf("node config: %w", err)
		}
	}
	return nil
}

// Marshal encodes n as indented JSON.
func (n *Node) Marshal() ([]byte, error) {
	return json.MarshalIndent(n, "", "  ")
}

// Load reads and validates the node configuration at path.
func Load(path string) (*Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading node config: %w", err)
	}
	var n Node
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("decoding node config %s: %w", path, err)
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return &n, nil
}

// PodCIDRSize is the prefix length of each node's share of the pod subnet.
const PodCIDRSize = 24

// PodCIDRFor returns the index-th /24 of podSubnet: the PodCIDR of the
// index-th node of a cluster.
func PodCIDRFor(podSubnet string, index int) (string, error) {
	_, subnet, err := net.ParseCIDR(podSubnet)
	if err != nil {
		return "", fmt.Errorf("pod subnet: %w", err)
	}
	base := subnet.IP.To4()
	ones, _ := subnet.Mask.Size()
	if base == nil || ones > PodCIDRSize {
		return "", fmt.Errorf("pod subnet %s: must be an IPv4 range of /%d or larger", podSubnet, PodCIDRSize)
	}
	if index < 0 || index >= 1<<(PodCIDRSize-ones) {
		return "", fmt.Errorf("pod subnet %s has room for %d nodes (a /%d each), not %d", podSubnet, 1<<(PodCIDRSize-ones), PodCIDRSize, index+1)
	}
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	v += uint32(index) << (32 - PodCIDRSize)
	ip := net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	return fmt.Sprintf("%s/%d", ip, PodCIDRSize), nil
}
