// Package docker is the Docker Engine provider, talking to the engine
// through its typed API client (API version negotiated, so Debian's
// Docker 20.10 works as well as current releases).
package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/go-connections/nat"

	"github.com/berth-dev/berth/cluster/provider"
)

// Provider is the Docker implementation of provider.Provider.
type Provider struct {
	api *client.Client
	log *slog.Logger
}

var _ provider.Provider = (*Provider)(nil)

// New connects to the Docker engine named by the environment
// (DOCKER_HOST, or the local socket).
func New(ctx context.Context, log *slog.Logger) (*Provider, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("connecting to Docker: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := api.Ping(pingCtx); err != nil {
		return nil, fmt.Errorf("no Docker engine answers (%v): start one (on Debian/Ubuntu as root: hack/install-deps.sh), or point DOCKER_HOST at one", err)
	}
	return &Provider{api: api, log: log}, nil
}

func clusterFilter(cluster string) filters.Args {
	if cluster == "" {
		return filters.NewArgs(filters.Arg("label", nodeconfig.LabelCluster))
	}
	return filters.NewArgs(filters.Arg("label", nodeconfig.LabelCluster+"="+cluster))
}

// NetworkName is the Docker network of a cluster.
func NetworkName(cluster string) string { return "berth-" + cluster }

// CreateNetwork makes the cluster's bridge network on the first /24 of
// 172.30.0.0/16 (then 10.210.0.0/16) that overlaps no existing network,
// so node addresses can be fixed. Two creates at once may pick the same
// subnet: the engine refuses the second ("overlaps"), which then tries
// the next free one.
//
// The network's name is the arbiter between two creates of one cluster
// name: Docker 20.10 checks for a duplicate name (CheckDuplicate) but not
// atomically, so after creating its network a create lists the networks
// of that name, and if there are several, only the oldest (by creation
// time, then ID) goes on; the others remove their own and fail with
// provider.ErrExists. Node container names (unique, atomically, in the
// engine) are the second arbiter, should two both go on.
func (p *Provider) CreateNetwork(ctx context.Context, cluster string, extra map[string]string) (*provider.Network, error) {
	name := NetworkName(cluster)
	labels := map[string]string{nodeconfig.LabelCluster: cluster}
	for k, v := range extra {
		labels[k] = v
	}
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		existing, err := p.api.NetworkList(ctx, network.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing networks: %w", err)
		}
		var used []*net.IPNet
		for _, n := range existing {
			if n.Name == name {
				return nil, fmt.Errorf("network %s: %w", name, provider.ErrExists)
			}
			for _, c := range n.IPAM.Config {
				if _, sn, err := net.ParseCIDR(c.Subnet); err == nil {
					used = append(used, sn)
				}
			}
		}
		subnet := FreeSubnet(used)
		if subnet == nil {
			return nil, fmt.Errorf("no free /24 left for the cluster network: delete unused Docker networks")
		}
		gateway := provider.NthIP(subnet, 1)
		// Docker hands out the lower half only (the nodes' static addresses
		// are there too): the upper half is the LoadBalancer pool.
		containers, err := config.ContainerRange(subnet)
		if err != nil {
			return nil, err
		}
		// The client sends CheckDuplicate to engines older than API 1.44.
		created, err := p.api.NetworkCreate(context.WithoutCancel(ctx), name, network.CreateOptions{
			Driver: "bridge",
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{
				Subnet:  subnet.String(),
				IPRange: containers.String(),
				Gateway: gateway.String(),
			}}},
			Options: map[string]string{"com.docker.network.driver.mtu": "1500"},
			Labels:  labels,
		})
		if err != nil {
			if errdefs.IsConflict(err) || strings.Contains(err.Error(), "already exists") {
				return nil, fmt.Errorf("network %s: %w", name, provider.ErrExists)
			}
			if strings.Contains(err.Error(), "overlaps") {
				// Another create reserved that subnet and its network
				// is not listed yet: wait a little, then look again
				// (it may be this cluster's name).
				lastErr = err
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Duration(100*(attempt+1)) * time.Millisecond):
				}
				continue
			}
			return nil, fmt.Errorf("creating network %s (%s): %w", name, subnet, err)
		}
		if err := p.keepIfFirst(ctx, name, created.ID); err != nil {
			return nil, err
		}
		return &provider.Network{Name: name, Subnet: subnet, Gateway: gateway}, nil
	}
	return nil, fmt.Errorf("creating network %s: every free subnet was taken by another create meanwhile: %w", name, lastErr)
}

// keepIfFirst removes the network id and fails with ErrExists if another
// network of the same name is older.
func (p *Provider) keepIfFirst(ctx context.Context, name, id string) error {
	list, err := p.api.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return fmt.Errorf("listing networks: %w", err)
	}
	first := id
	var firstAt time.Time
	for _, n := range list {
		if n.Name != name {
			continue // the filter matches substrings
		}
		if n.ID == id && firstAt.IsZero() {
			firstAt = n.Created
			continue
		}
		if firstAt.IsZero() || n.Created.Before(firstAt) || (n.Created.Equal(firstAt) && n.ID < first) {
			first, firstAt = n.ID, n.Created
		}
	}
	if first == id {
		return nil
	}
	if err := p.api.NetworkRemove(context.WithoutCancel(ctx), id); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("network %s: %w; removing this create's duplicate %s also failed: %v", name, provider.ErrExists, id, err)
	}
	return fmt.Errorf("network %s: %w (another berth is creating the same cluster)", name, provider.ErrExists)
}

// FreeSubnet returns the first candidate /24 that overlaps none of used.
func FreeSubnet(used []*net.IPNet) *net.IPNet {
	for _, base := range [][2]byte{{172, 30}, {10, 210}} {
		for third := 0; third < 256; third++ {
			cand := &net.IPNet{IP: net.IPv4(base[0], base[1], byte(third), 0).To4(), Mask: net.CIDRMask(24, 32)}
			free := true
			for _, u := range used {
				if u.Contains(cand.IP) || cand.Contains(u.IP) {
					free = false
					break
				}
			}
			if free {
				return cand
			}
		}
	}
	return nil
}

// NodeCapabilities is the capability set of a node container, granted
// explicitly (every other capability is dropped) instead of --privileged.
// docs/security.md says why each is needed and which were left out.
var NodeCapabilities = []string{
	// Docker's default set: what any container runtime needs to set up
	// files, users and processes (containerd and runc unpack image layers
	// with their owners and modes, switch to a pod's user, chroot, ...).
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "SETFCAP", "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE",
	// Mounts (/sys/fs/cgroup, rshared /, overlay snapshots, pod volumes),
	// cgroup creation, namespaces for pods, seccomp filters for pods.
	"SYS_ADMIN",
	// Pod networks: veth pairs, routes, bridge, nftables rules of
	// kube-proxy and the node agent, sysctls under net.
	"NET_ADMIN",
	// The kubelet's OOM watcher reads /dev/kmsg (the kubelet does not
	// start without it), which needs this where kernel.dmesg_restrict=1.
	"SYSLOG",
	// runc opens /proc/<pid>/ns/* of a container's (non-dumpable) init
	// process to create every container and to exec into one: without
	// it no pod sandbox starts ("open /proc/<pid>/ns/mnt: permission
	// denied").
	"SYS_PTRACE",
}

// NodePID implements provider.Provider.
func (p *Provider) NodePID(ctx context.Context, name string) (int, error) {
	info, err := p.api.ContainerInspect(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("inspecting node %s: %w", name, err)
	}
	if info.State == nil || !info.State.Running {
		return 0, nil
	}
	return info.State.Pid, nil
}

// CreateNode creates, fills and starts one node container. A node runs
// with the explicit capability set NodeCapabilities, never --privileged.
func (p *Provider) CreateNode(ctx context.Context, spec provider.NodeSpec) error {
	return p.createAndStart(ctx, spec)
}

// portBindings returns the ports a container exposes and publishes. A
// mapping without a listen address is published on the host's loopback
// only, never on every interface (Docker's default).
func portBindings(ports []provider.PortMapping) (nat.PortSet, nat.PortMap, error) {
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, pm := range ports {
		proto := pm.Protocol
		if proto == "" {
			proto = "tcp"
		}
		port, err := nat.NewPort(strings.ToLower(proto), strconv.Itoa(pm.ContainerPort))
		if err != nil {
			return nil, nil, fmt.Errorf("port %d/%s: %w", pm.ContainerPort, proto, err)
		}
		exposed[port] = struct{}{}
		hostPort := ""
		if pm.HostPort > 0 {
			hostPort = strconv.Itoa(pm.HostPort)
		}
		bindings[port] = append(bindings[port], nat.PortBinding{HostIP: ListenAddress(pm.ListenAddress), HostPort: hostPort})
	}
	return exposed, bindings, nil
}

// DefaultListenAddress is where a port is published when no listen
// address is configured.
const DefaultListenAddress = "127.0.0.1"

// ListenAddress returns addr, or DefaultListenAddress if it is empty.
func ListenAddress(addr string) string {
	if addr == "" {
		return DefaultListenAddress
	}
	return addr
}

// nodeHostConfig is a node container's host configuration; a helper
// container (the API load balancer) gets no privileges beyond Docker's
// defaults.
func nodeHostConfig(spec provider.NodeSpec, mounts []mount.Mount, bindings nat.PortMap) *container.HostConfig {
	restart := container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	if spec.Helper {
		return &container.HostConfig{PortBindings: bindings, RestartPolicy: restart}
	}
	host := &container.HostConfig{
		CgroupnsMode:  container.CgroupnsModePrivate,
		SecurityOpt:   []string{"seccomp=unconfined", "apparmor=unconfined"},
		Tmpfs:         map[string]string{"/run": "rw,exec", "/tmp": "rw,exec"},
		Mounts:        mounts,
		PortBindings:  bindings,
		RestartPolicy: restart,
		Init:          new(bool),
		CapDrop:       []string{"ALL"},
		CapAdd:        slices.Clone(NodeCapabilities),
		// The API form of --security-opt systempaths=unconfined: nothing
		// masked or read-only under /proc and /sys (non-nil and empty),
		// so berth-node can remount cgroups and set sysctls.
		MaskedPaths:   []string{},
		ReadonlyPaths: []string{},
	}
	// runc, inside the node, gives every pod container its default device
	// list (and a privileged pod every device): under cgroup v1 a child
	// cgroup may only allow what its parent allows.
	host.Resources.DeviceCgroupRules = []string{"a *:* rwm"}
	return host
}

func volumeName(node string) string { return node + "-var" }

// sharedVolume names the volume every node of cluster mounts at
// provider.SharedDir.
func sharedVolume(cluster string) string { return "berth-" + cluster + "-shared" }

func (p *Provider) createAndStart(ctx context.Context, spec provider.NodeSpec) error {
	// The calls that make objects are not cancelled by an interrupt: a
	// request the engine already received may complete after the client
	// gave up on it, and then the create's undo (which lists what it
	// made) would miss the object. Each call is short; an interrupt is
	// noticed after it.
	mk := context.WithoutCancel(ctx)
	labels := map[string]string{nodeconfig.LabelCluster: spec.Cluster, nodeconfig.LabelRole: spec.Role}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	exposed, bindings, err := portBindings(spec.Ports)
	if err != nil {
		return err
	}
	var mounts []mount.Mount
	if !spec.Helper {
		vol := volumeName(spec.Name)
		volLabels := map[string]string{nodeconfig.LabelCluster: spec.Cluster}
		if id := spec.Labels[provider.LabelCreateID]; id != "" {
			volLabels[provider.LabelCreateID] = id
		}
		// A volume of that name may exist (Docker returns it): then it is
		// not this create's, and the container create below conflicts.
		if _, err := p.api.VolumeCreate(mk, volume.CreateOptions{Name: vol, Labels: volLabels}); err != nil {
			return fmt.Errorf("creating volume %s: %w", vol, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: vol, Target: "/var"})
		// The cluster's shared volume (provider.SharedDir): made by the
		// first node, the others get the same one back.
		shared := sharedVolume(spec.Cluster)
		if _, err := p.api.VolumeCreate(mk, volume.CreateOptions{Name: shared, Labels: volLabels}); err != nil {
			return fmt.Errorf("creating volume %s: %w", shared, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: shared, Target: provider.SharedDir})
		// Kernel modules are read by kube-proxy and the CNI plugins when
		// present; some hosts (VMs with built-in drivers) have none.
		if _, err := os.Stat("/lib/modules"); err == nil {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: "/lib/modules", Target: "/lib/modules", ReadOnly: true})
		}
	}
	for _, m := range spec.Mounts {
		bm := mount.Mount{Type: mount.TypeBind, Source: m.HostPath, Target: m.ContainerPath, ReadOnly: m.ReadOnly}
		switch m.Propagation {
		case "HostToContainer":
			bm.BindOptions = &mount.BindOptions{Propagation: mount.PropagationRSlave}
		case "Bidirectional":
			bm.BindOptions = &mount.BindOptions{Propagation: mount.PropagationRShared}
		}
		mounts = append(mounts, bm)
	}
	host := nodeHostConfig(spec, mounts, bindings)
	for _, d := range spec.Devices {
		host.Resources.Devices = append(host.Resources.Devices, container.DeviceMapping{PathOnHost: d, PathInContainer: d, CgroupPermissions: "rwm"})
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Hostname:     spec.Name,
		Labels:       labels,
		Env:          []string{"container=docker"},
		ExposedPorts: exposed,
		Tty:          false,
		StopSignal:   "SIGTERM",
		Cmd:          spec.Args,
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		spec.Network: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: spec.IP.String()}},
	}}
	if _, err := p.api.ContainerCreate(mk, cfg, host, netCfg, nil, spec.Name); err != nil {
		if errdefs.IsConflict(err) {
			return fmt.Errorf("creating node %s: %w (%v)", spec.Name, provider.ErrExists, err)
		}
		return fmt.Errorf("creating node %s: %w", spec.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(spec.Files) > 0 {
		archive, err := tarFiles(spec.Files)
		if err != nil {
			return err
		}
		if err := p.api.CopyToContainer(mk, spec.Name, "/", archive, container.CopyToContainerOptions{}); err != nil {
			return fmt.Errorf("copying configuration into node %s: %w", spec.Name, err)
		}
	}
	if err := p.api.ContainerStart(mk, spec.Name, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting node %s: %w", spec.Name, err)
	}
	return nil
}

// tarFiles packs files (with their parent directories) as a tar archive
// rooted at /.
func tarFiles(files []provider.File) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Now()
	for _, f := range files {
		rel := strings.TrimPrefix(path.Clean(f.Path), "/")
		if f.Mode.IsDir() {
			// A directory with its own mode (0700 for key directories).
			if dirs[rel] {
				return nil, fmt.Errorf("directory /%s: listed after a file in it", rel)
			}
			dirs[rel] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: int64(f.Mode.Perm()), ModTime: now}); err != nil {
				return nil, err
			}
			continue
		}
		var parents []string
		for d := path.Dir(rel); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
			dirs[d] = true
		}
		for _, d := range parents {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
				return nil, err
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(mode.Perm()), Size: int64(len(f.Data)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// ListNodes lists node containers, sorted by name.
func (p *Provider) ListNodes(ctx context.Context, cluster string) ([]provider.Node, error) {
	list, err := p.api.ContainerList(ctx, container.ListOptions{All: true, Filters: clusterFilter(cluster)})
	if err != nil {
		return nil, fmt.Errorf("listing node containers: %w", err)
	}
	var nodes []provider.Node
	for _, c := range list {
		name := strings.TrimPrefix(firstOr(c.Names, c.ID), "/")
		ip := ""
		if c.NetworkSettings != nil {
			for _, ep := range c.NetworkSettings.Networks {
				if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address != "" {
					ip = ep.IPAMConfig.IPv4Address
				} else if ep.IPAddress != "" {
					ip = ep.IPAddress
				}
			}
		}
		nodes = append(nodes, provider.Node{
			Name:    name,
			Cluster: c.Labels[nodeconfig.LabelCluster],
			Role:    c.Labels[nodeconfig.LabelRole],
			IP:      ip,
			State:   c.State,
			Labels:  c.Labels,
		})
	}
	sortNodes(nodes)
	return nodes, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// DeleteCluster removes the cluster's containers (killing them: the
// cluster is being thrown away), then its networks (after disconnecting
// containers that are not the cluster's) and volumes. It goes
// on past errors and reports them all.
func (p *Provider) DeleteCluster(ctx context.Context, cluster string) error {
	if cluster == "" {
		return fmt.Errorf("deleting a cluster needs its name")
	}
	return p.deleteMatching(ctx, clusterFilter(cluster))
}

// DeleteCreated removes what the create createID made of cluster.
func (p *Provider) DeleteCreated(ctx context.Context, cluster, createID string) error {
	if cluster == "" || createID == "" {
		return fmt.Errorf("deleting what a create made needs the cluster name and the create's ID")
	}
	f := clusterFilter(cluster)
	f.Add("label", provider.LabelCreateID+"="+createID)
	return p.deleteMatching(ctx, f)
}

func (p *Provider) deleteMatching(ctx context.Context, f filters.Args) error {
	var errs []error
	list, err := p.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !client.IsErrNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("removing container %s: %w", firstOr(c.Names, c.ID), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	nets, err := p.api.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("listing networks: %w", err))
	}
	for _, n := range nets {
		// Containers the user attached (a local registry, a test client)
		// are disconnected, not removed: they are not the cluster's.
		if info, err := p.api.NetworkInspect(ctx, n.ID, network.InspectOptions{}); err == nil {
			for id := range info.Containers {
				if err := p.api.NetworkDisconnect(ctx, n.ID, id, true); err != nil && !client.IsErrNotFound(err) {
					errs = append(errs, fmt.Errorf("disconnecting container %s from network %s: %w", id, n.Name, err))
				}
			}
		}
		if err := p.api.NetworkRemove(ctx, n.ID); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("removing network %s: %w", n.Name, err))
		}
	}
	vols, err := p.api.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("listing volumes: %w", err))
	}
	for _, v := range vols.Volumes {
		if err := p.api.VolumeRemove(ctx, v.Name, true); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Errorf("removing volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// StopCluster stops the cluster's containers (SIGTERM: berth-node stops
// its components in order), in parallel.
func (p *Provider) StopCluster(ctx context.Context, cluster string) error {
	timeout := 20
	return p.eachContainer(ctx, cluster, func(id string) error {
		return p.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout})
	})
}

// StartCluster starts the cluster's containers again, in parallel.
func (p *Provider) StartCluster(ctx context.Context, cluster string) error {
	return p.eachContainer(ctx, cluster, func(id string) error {
		return p.api.ContainerStart(ctx, id, container.StartOptions{})
	})
}

func (p *Provider) eachContainer(ctx context.Context, cluster string, fn func(id string) error) error {
	list, err := p.api.ContainerList(ctx, container.ListOptions{All: true, Filters: clusterFilter(cluster)})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(c.ID); err != nil {
				errs[i] = fmt.Errorf("%s: %w", firstOr(c.Names, c.ID), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ClusterObjects counts the containers, networks and volumes left of a
// cluster ("" counts every berth cluster's).
func (p *Provider) ClusterObjects(ctx context.Context, cluster string) (int, int, int, error) {
	f := clusterFilter(cluster)
	cs, err := p.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return 0, 0, 0, err
	}
	ns, err := p.api.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return 0, 0, 0, err
	}
	vs, err := p.api.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return 0, 0, 0, err
	}
	return len(cs), len(ns), len(vs.Volumes), nil
}

func markerVolume(cluster string) string { return "berth-" + cluster + "-complete" }

// MarkComplete records that the cluster's create finished: an empty
// volume, labelled with the cluster (so deleting the cluster removes it)
// and LabelComplete. Container labels cannot change after creation, and
// a volume is listed as cheaply as a container, without reading a file
// from a node.
func (p *Provider) MarkComplete(ctx context.Context, cluster string) error {
	_, err := p.api.VolumeCreate(ctx, volume.CreateOptions{Name: markerVolume(cluster), Labels: map[string]string{
		nodeconfig.LabelCluster: cluster, provider.LabelComplete: "true",
	}})
	if err != nil {
		return fmt.Errorf("marking cluster %q complete: %w", cluster, err)
	}
	return nil
}

// Clusters lists every cluster with containers, networks or volumes.
func (p *Provider) Clusters(ctx context.Context) ([]provider.ClusterState, error) {
	f := clusterFilter("")
	byName := map[string]*provider.ClusterState{}
	get := func(labels map[string]string) *provider.ClusterState {
		name := labels[nodeconfig.LabelCluster]
		if name == "" {
			return nil
		}
		if byName[name] == nil {
			byName[name] = &provider.ClusterState{Name: name}
		}
		return byName[name]
	}
	cs, err := p.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	for _, c := range cs {
		if s := get(c.Labels); s != nil {
			s.Containers++
			if c.Labels[provider.LabelCreateID] != "" {
				s.Tracked = true
			}
		}
	}
	ns, err := p.api.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing networks: %w", err)
	}
	for _, n := range ns {
		if s := get(n.Labels); s != nil {
			s.Networks++
		}
	}
	vs, err := p.api.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing volumes: %w", err)
	}
	for _, v := range vs.Volumes {
		if s := get(v.Labels); s != nil {
			if v.Labels[provider.LabelComplete] == "true" {
				s.Complete = true
			} else {
				s.Volumes++
			}
		}
	}
	out := make([]provider.ClusterState, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
