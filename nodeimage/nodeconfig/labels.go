package nodeconfig

// Labels berth puts on every container, network, volume and image it
// makes, so it finds (and deletes) exactly its own objects. They are
// defined here, in the module both the CLI and berth-node import, so each
// is written once.
const (
	LabelCluster       = "berth.dev/cluster"
	LabelRole          = "berth.dev/role"
	LabelAPIServerPort = "berth.dev/api-server-port"
	LabelAPIServerAddr = "berth.dev/api-server-address"
	// LabelNodeRecipe is the node image's recipe hash: an image whose
	// label matches what this berth would build is used as it is.
	LabelNodeRecipe = "berth.dev/node-recipe"
	// LabelKubernetesVersion is the Kubernetes version a node image (and
	// each node container) runs.
	LabelKubernetesVersion = "berth.dev/kubernetes-version"
)

// RoleLoadBalancer is the role of a cluster's API load balancer container
// (not a Kubernetes node).
const RoleLoadBalancer = "external-load-balancer"
