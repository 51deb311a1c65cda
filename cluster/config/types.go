// Package config is berth's cluster configuration: the types of a
// berth.dev/v1alpha1 Cluster file, their defaults and their validation.
package config

// APIVersion and Kind of a berth cluster file.
const (
	APIVersion = "berth.dev/v1alpha1"
	Kind       = "Cluster"
)

// Cluster describes a cluster to create.
type Cluster struct {
	APIVersion string `json:"apiVersion,omitempty" yaml:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty" yaml:"kind,omitempty"`
	Name       string `json:"name,omitempty" yaml:"name,omitempty"`
	// KubernetesVersion is a supported version (vX.Y.Z) or minor (vX.Y);
	// empty selects the default. A node's image overrides it.
	KubernetesVersion string            `json:"kubernetesVersion,omitempty" yaml:"kubernetesVersion,omitempty"`
	Nodes             []Node            `json:"nodes,omitempty" yaml:"nodes,omitempty"`
	Networking        Networking        `json:"networking,omitempty" yaml:"networking,omitempty"`
	FeatureGates      map[string]bool   `json:"featureGates,omitempty" yaml:"featureGates,omitempty"`
	RuntimeConfig     map[string]string `json:"runtimeConfig,omitempty" yaml:"runtimeConfig,omitempty"`
	// Registry, when set (even to {}), connects the cluster to the
	// machine's local registry, started if it is not running.
	Registry *RegistryConfig `json:"registry,omitempty" yaml:"registry,omitempty"`
}

// RegistryConfig is the local registry a cluster uses: one per machine,
// shared by every cluster that asks for it, published on
// 127.0.0.1:<port> and pulled from by the nodes as localhost:<port>.
type RegistryConfig struct {
	// Port is the host port (default DefaultRegistryPort). The registry
	// is shared: a cluster asking for another port than the running
	// registry's is refused.
	Port int `json:"port,omitempty" yaml:"port,omitempty"`
}

// Node is one node of the cluster.
type Node struct {
	Role              string            `json:"role,omitempty" yaml:"role,omitempty"`
	Image             string            `json:"image,omitempty" yaml:"image,omitempty"`
	Labels            map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	ExtraPortMappings []PortMapping     `json:"extraPortMappings,omitempty" yaml:"extraPortMappings,omitempty"`
	ExtraMounts       []Mount           `json:"extraMounts,omitempty" yaml:"extraMounts,omitempty"`
	SRIOV             []SRIOV           `json:"sriov,omitempty" yaml:"sriov,omitempty"` // sriov.go
}

// PortMapping publishes a node port on the host.
type PortMapping struct {
	ContainerPort int    `json:"containerPort" yaml:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty" yaml:"hostPort,omitempty"`
	ListenAddress string `json:"listenAddress,omitempty" yaml:"listenAddress,omitempty"`
	Protocol      string `json:"protocol,omitempty" yaml:"protocol,omitempty"`
}

// Mount is a host path mounted into a node.
type Mount struct {
	HostPath      string `json:"hostPath" yaml:"hostPath"`
	ContainerPath string `json:"containerPath" yaml:"containerPath"`
	ReadOnly      bool   `json:"readOnly,omitempty" yaml:"readOnly,omitempty"`
	Propagation   string `json:"propagation,omitempty" yaml:"propagation,omitempty"`
}

// Networking configures the cluster network.
type Networking struct {
	PodSubnet         string `json:"podSubnet,omitempty" yaml:"podSubnet,omitempty"`
	ServiceSubnet     string `json:"serviceSubnet,omitempty" yaml:"serviceSubnet,omitempty"`
	APIServerAddress  string `json:"apiServerAddress,omitempty" yaml:"apiServerAddress,omitempty"`
	APIServerPort     int    `json:"apiServerPort,omitempty" yaml:"apiServerPort,omitempty"`
	KubeProxyMode     string `json:"kubeProxyMode,omitempty" yaml:"kubeProxyMode,omitempty"`
	DisableDefaultCNI bool   `json:"disableDefaultCNI,omitempty" yaml:"disableDefaultCNI,omitempty"`
	DNSDomain         string `json:"dnsDomain,omitempty" yaml:"dnsDomain,omitempty"`
	// LoadBalancer runs MetalLB for LoadBalancer Services (default true;
	// false leaves it out). See loadbalancer.go.
	LoadBalancer *bool `json:"loadBalancer,omitempty" yaml:"loadBalancer,omitempty"`
	// LoadBalancerPool is the range MetalLB hands out: a CIDR or
	// "first-last" inside the cluster network (default: the network's
	// upper half, which Docker never hands out).
	LoadBalancerPool string `json:"loadBalancerPool,omitempty" yaml:"loadBalancerPool,omitempty"`
}

// Defaults.
const (
	DefaultName          = "berth"
	DefaultPodSubnet     = "10.244.0.0/16"
	DefaultServiceSubnet = "10.96.0.0/16"
	DefaultAPIAddress    = "127.0.0.1"
	DefaultProxyMode     = "nftables"
	DefaultDNSDomain     = "cluster.local"
	// DefaultRegistryPort is the local registry's host port, as in
	// kind's local-registry recipe.
	DefaultRegistryPort = 5001
)
