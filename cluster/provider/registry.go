package provider

import "context"

// RegistrySpec is the local registry's container: one per machine,
// outside every cluster (it carries no cluster label, so deleting a
// cluster only disconnects it), reached from the host on a published
// port and from each cluster that uses it by its name on that cluster's
// network.
type RegistrySpec struct {
	// Name is the container's name, also its DNS name on every network
	// it joins.
	Name  string
	Image string
	// Volume is the named volume holding its data, mounted on DataDir;
	// an existing one is reused.
	Volume  string
	DataDir string
	// ListenAddress and HostPort publish ContainerPort on the host.
	ListenAddress string
	HostPort      int
	ContainerPort int
	// Labels go on the container and on the volume.
	Labels map[string]string
}

// Registry is the local registry's container as the engine reports it.
type Registry struct {
	Name  string
	Image string
	// State is the engine's container state (running, exited, ...).
	State         string
	ListenAddress string
	HostPort      int
	// Networks are the networks it is attached to, sorted.
	Networks []string
	Volume   string
	Labels   map[string]string
}

// Registries runs the local registry container.
type Registries interface {
	// CreateRegistry creates its volume (unless it exists) and creates
	// and starts the container, restarted by the engine after a crash or
	// an engine restart.
	CreateRegistry(ctx context.Context, spec RegistrySpec) error
	// GetRegistry returns the container called name, or nil if there is
	// none.
	GetRegistry(ctx context.Context, name string) (*Registry, error)
	// StartRegistry starts the (stopped) container called name.
	StartRegistry(ctx context.Context, name string) error
	// ConnectRegistry attaches the container to network, where it
	// answers to its name; attaching it again is not an error.
	ConnectRegistry(ctx context.Context, name, network string) error
	// DisconnectRegistry detaches it from network; a container or
	// network that is gone, or not attached, is not an error.
	DisconnectRegistry(ctx context.Context, name, network string) error
	// DeleteRegistry removes the container (none when name is "") and
	// the volume; what is already gone is not an error.
	DeleteRegistry(ctx context.Context, name, volume string) error
	// VolumeSize returns the bytes a volume uses (-1 when the engine
	// does not say).
	VolumeSize(ctx context.Context, volume string) (int64, error)
}
