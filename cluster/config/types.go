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
	APIVersion    string            `json:"apiVersion,omitempty"`
	Kind          string            `json:"kind,omitempty"`
	Name          string            `json:"name,omitempty"`
	Nodes         []Node            `json:"nodes,omitempty"`
	Networking    Networking        `json:"networking,omitempty"`
	FeatureGates  map[string]bool   `json:"featureGates,omitempty"`
	RuntimeConfig map[string]string `json:"runtimeConfig,omitempty"`
}

// Node roles.
const (
	ControlPlaneRole = "control-plane"
	WorkerRole       = "worker"
)

// Node is one node of the cluster.
type Node struct {
	Role              string            `json:"role,omitempty"`
	Image             string            `json:"image,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	ExtraPortMappings []PortMapping     `json:"extraPortMappings,omitempty"`
	ExtraMounts       []Mount           `json:"extraMounts,omitempty"`
}

// PortMapping publishes a node port on the host.
type PortMapping struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty"`
	ListenAddress string `json:"listenAddress,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

// Mount is a host path mounted into a node.
type Mount struct {
	HostPath      string `json:"hostPath"`
	ContainerPath string `json:"containerPath"`
	ReadOnly      bool   `json:"readOnly,omitempty"`
	Propagation   string `json:"propagation,omitempty"`
}

// Networking configures the cluster network.
type Networking struct {
	PodSubnet         string `json:"podSubnet,omitempty"`
	ServiceSubnet     string `json:"serviceSubnet,omitempty"`
	APIServerAddress  string `json:"apiServerAddress,omitempty"`
	APIServerPort     int    `json:"apiServerPort,omitempty"`
	KubeProxyMode     string `json:"kubeProxyMode,omitempty"`
	DisableDefaultCNI bool   `json:"disableDefaultCNI,omitempty"`
	DNSDomain         string `json:"dnsDomain,omitempty"`
}

// Defaults.
const (
	DefaultName          = "berth"
	DefaultPodSubnet     = "10.244.0.0/16"
	DefaultServiceSubnet = "10.96.0.0/16"
	DefaultAPIAddress    = "127.0.0.1"
	DefaultProxyMode     = "nftables"
	DefaultDNSDomain     = "cluster.local"
)
