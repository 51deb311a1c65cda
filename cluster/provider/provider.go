// Package provider defines what berth needs from a container engine to
// run a cluster's nodes. The Docker implementation lives in
// provider/docker; the create, delete and load actions only see this
// interface.
package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// File is written into a node before it starts.
type File struct {
	Path string
	Mode os.FileMode
	Data []byte
}

// PortMapping publishes a node port on the host.
type PortMapping struct {
	ListenAddress string
	HostPort      int
	ContainerPort int
	Protocol      string // tcp, udp or sctp
}

// Mount is a host path mounted into a node.
type Mount struct {
	HostPath      string
	ContainerPath string
	ReadOnly      bool
	Propagation   string // None, HostToContainer or Bidirectional
}

// NodeSpec is everything needed to create one node container.
type NodeSpec struct {
	Name    string
	Cluster string
	Role    string
	Image   string
	Network string
	IP      net.IP
	Ports   []PortMapping
	Mounts  []Mount
	Files   []File
	Labels  map[string]string
	// Args are passed to the image's entrypoint (berth-node).
	Args []string
	// Helper marks a container that is not a Kubernetes node (the API
	// load balancer): no extra privileges, no /var volume.
	Helper bool
	// Devices are host device nodes passed into the container under the
	// same path, readable and writable (vfio groups for SR-IOV).
	Devices []string
}

// ImageInfo is what the engine says about one local image.
type ImageInfo struct {
	// ID is the digest of the image's configuration.
	ID string
	// Size is the size of its layers' files, unpacked, in bytes.
	Size int64
	// Layers are the digests of its uncompressed layers (diff IDs), base
	// first.
	Layers []string
}

// ExecError is a command in a node that ran and exited non-zero.
type ExecError struct {
	Node     string
	Cmd      []string
	ExitCode int
	// Stderr is what the command wrote to its stderr, trimmed.
	Stderr string
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("%v in node %s exited with %d: %s", e.Cmd, e.Node, e.ExitCode, e.Stderr)
}

// Node is a node container as the engine reports it.
type Node struct {
	Name    string
	Cluster string
	Role    string
	IP      string
	// State is the engine's container state (running, exited, ...).
	State  string
	Labels map[string]string
}

// Network is a cluster's network.
type Network struct {
	Name    string
	Subnet  *net.IPNet
	Gateway net.IP
}

// NodeIP returns the static address of the i-th node (0-based): nodes
// take the addresses after the gateway, in order, so a node keeps its
// address (and its certificates stay valid) across restarts.
func (n *Network) NodeIP(i int) net.IP { return NthIP(n.Subnet, i+2) }

// NthIP returns the n-th address of an IPv4 subnet (0 is the network
// address itself).
func NthIP(subnet *net.IPNet, n int) net.IP {
	ip := subnet.IP.To4()
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	v += uint32(n)
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4()
}

// ErrExists is returned (wrapped) when a cluster's network or node
// already exists: another create of the same name got there first.
var ErrExists = errors.New("already exists")

// LabelCreateID marks every container, network and volume one create
// made with that create's random ID, so a create that fails removes what
// it made and nothing of another create of the same name. (Here, not in
// nodeconfig: the nodes never read it.)
const LabelCreateID = "berth.dev/create-id"

// SharedDir is where every node of a cluster mounts the cluster's shared
// volume (a provider that has one): `berth load` writes an image archive
// there once and every node imports that same file, as k3d's image
// volume does, instead of one copy per node. A cluster made before it
// existed has no such directory; load then writes into each node.
const SharedDir = "/mnt/berth-shared"

// LabelComplete marks the object that records that a cluster's create
// finished (MarkComplete).
const LabelComplete = "berth.dev/complete"

// ClusterState is what of one cluster exists in the engine.
type ClusterState struct {
	Name                          string
	Containers, Networks, Volumes int
	// Complete: its create finished (MarkComplete ran).
	Complete bool
	// Tracked: its containers carry LabelCreateID, so its create was
	// one that marks completion; clusters made before that have no
	// mark and count as complete when they have containers.
	Tracked bool
}

// Finished tells whether the cluster's create finished: marked complete,
// or made (with containers) by a berth that did not mark completion.
func (c ClusterState) Finished() bool {
	return c.Complete || (c.Containers > 0 && !c.Tracked)
}

// Provider runs node containers.
type Provider interface {
	// CreateNetwork makes the cluster's network on a free subnet, with
	// labels added to berth's own. If the cluster's network exists (or
	// another create makes it at the same time and wins), it fails with
	// ErrExists and leaves no network of its own behind.
	CreateNetwork(ctx context.Context, cluster string, labels map[string]string) (*Network, error)
	// DeleteCreated removes the containers, networks and volumes of
	// cluster that the create with createID made (LabelCreateID).
	DeleteCreated(ctx context.Context, cluster, createID string) error
	// MarkComplete records that the cluster's create finished.
	MarkComplete(ctx context.Context, cluster string) error
	// Clusters lists every cluster of which anything exists (containers,
	// networks or volumes), sorted by name.
	Clusters(ctx context.Context) ([]ClusterState, error)
	// CreateNode creates and starts a node container; ErrExists if a
	// container of that name exists.
	CreateNode(ctx context.Context, spec NodeSpec) error
	// NodePID returns the host PID of a node container's init process,
	// 0 when the container is not running.
	NodePID(ctx context.Context, name string) (int, error)
	// ListNodes lists the node containers of cluster ("" for all).
	ListNodes(ctx context.Context, cluster string) ([]Node, error)
	// DeleteCluster removes every container, network and volume of cluster.
	DeleteCluster(ctx context.Context, cluster string) error
	// StopCluster stops every container of cluster, keeping all state.
	StopCluster(ctx context.Context, cluster string) error
	// StartCluster starts every container of cluster again.
	StartCluster(ctx context.Context, cluster string) error
	// ClusterObjects counts what of cluster (or of all clusters, for "")
	// still exists: containers, networks and volumes.
	ClusterObjects(ctx context.Context, cluster string) (containers, networks, volumes int, err error)
	// ReadFile reads a file from a node.
	ReadFile(ctx context.Context, node, path string) ([]byte, error)
	// Exec runs a command in a node, with stdin and stdout attached.
	Exec(ctx context.Context, node string, stdin io.Reader, stdout io.Writer, cmd ...string) error
	// WriteFile streams size bytes of content into a new file name (mode
	// 0600) in the existing directory dir of a node.
	WriteFile(ctx context.Context, node, dir, name string, size int64, content io.Reader) error
	// SaveImages streams images from the engine as a tar archive.
	SaveImages(ctx context.Context, images []string) (io.ReadCloser, error)
	// ImageID returns an image's ID, or "" if the engine lacks it.
	ImageID(ctx context.Context, image string) (string, error)
	// ImageInfo describes an image; nil if the engine lacks it.
	ImageInfo(ctx context.Context, image string) (*ImageInfo, error)
	// ImageLabels returns an image's labels; ok is false if it is missing.
	ImageLabels(ctx context.Context, image string) (labels map[string]string, ok bool, err error)
	// ImportImage turns a root filesystem tar stream into an image.
	ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error
	// LoadImage loads the images of a docker-archive tar stream (their
	// configurations and layers as written, so an image assembled the
	// same way twice gets the same ID).
	LoadImage(ctx context.Context, archive io.Reader) error
	// PullImage pulls ref from its registry, showing progress on out; a
	// ref with a digest is verified against it.
	PullImage(ctx context.Context, ref string, out io.Writer) error
	// PushImage pushes ref to its registry, showing progress on out.
	PushImage(ctx context.Context, ref string, out io.Writer) error
	// TagImage gives image src the reference dst.
	TagImage(ctx context.Context, src, dst string) error
	// RemoveImage removes the reference ref.
	RemoveImage(ctx context.Context, ref string) error
	// ImageDigest returns the registry digest of ref ("" if it has none).
	ImageDigest(ctx context.Context, ref string) (string, error)
	// Registries runs the local registry container (registry.go).
	Registries
}
