// Package versions pins every component a node image is built from. It
// is the one place to change a version; the node image build, the node
// binary and the CLI all read it from here.
package versions

// Kubernetes is the version every node runs.
const Kubernetes = "v1.36.3"

// Components compiled into the node image from the Go module proxy.
const (
	Containerd  = "v2.4.2"
	Runc        = "v1.5.2"
	CNIPlugins  = "v1.9.1"
	CoreDNS     = "v1.15.0"
	Etcd        = "v3.6.8" // embedded in berth-node; the version Kubernetes requires
	LocalPath   = "v0.0.30"
	DebianSuite = "bookworm"
)

// Images the cluster runs from the node image (never pulled). The names
// are the upstream ones, so manifests and the conformance suite find them.
const (
	PauseImage   = "registry.k8s.io/pause:3.10.2"
	CoreDNSImage = "registry.k8s.io/coredns/coredns:" + CoreDNS
	StorageImage = "docker.io/rancher/local-path-provisioner:" + LocalPath
	// HelperImage runs local-path-provisioner's volume setup scripts:
	// Debian's busybox-static.
	HelperImage = "docker.io/library/busybox:1.35-berth"
)

// NodeImage is the default node image reference.
const NodeImage = "berth/node:" + Kubernetes
