// Package sriov is the node side of SR-IOV passthrough: a kubelet device
// plugin (v1beta1) per resource name that serves the VFs the host gave
// this node (node.json) as an extended resource. The chained CNI plugin in
// sriov/cni moves an allocated netdevice VF into its pod.
//
// Each resource gets its own plugin server on a socket in the kubelet's
// device-plugin directory, registered with the kubelet; when the kubelet
// restarts (its kubelet.sock is recreated, and it removes the plugins'
// sockets) the plugin serves and registers again.
package sriov

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// EnvName returns the environment variable that carries a resource's
// allocated PCI addresses into a container: PCIDEVICE_<RESOURCE>, the
// resource name upper-cased with every other character made "_" — the
// convention of the upstream SR-IOV device plugin that DPDK apps read
// (intel.com/sriov_net → PCIDEVICE_INTEL_COM_SRIOV_NET).
func EnvName(resource string) string {
	var b strings.Builder
	b.WriteString("PCIDEVICE_")
	for _, r := range strings.ToUpper(resource) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Checker tells whether a VF is usable on this node.
type Checker interface {
	// Healthy reports whether vf is present: its netdev in the node (or
	// in a pod it was allocated to), or its vfio group device.
	Healthy(vf nodeconfig.VF) bool
}

// Plugin serves one resource's VFs to the kubelet.
type Plugin struct {
	pluginapi.UnimplementedDevicePluginServer

	Resource string
	VFs      []nodeconfig.VF
	// Dir is the kubelet's device-plugin directory (pluginapi.DevicePluginPath).
	Dir string
	// DevRoot is where /dev is ("/dev"; tests use a fake tree).
	DevRoot string
	Health  Checker
	// Interval bounds how stale health may be; Changed triggers a
	// re-check at once (netlink link events).
	Interval time.Duration
	Changed  <-chan struct{}
	Log      *slog.Logger

	mu      sync.Mutex
	devices []*pluginapi.Device
	update  chan struct{}
}

func (p *Plugin) socketName() string {
	name := strings.NewReplacer("/", "-", ".", "-").Replace(p.Resource)
	return "berth-" + name + ".sock"
}

func (p *Plugin) byPCI(id string) (nodeconfig.VF, bool) {
	for _, vf := range p.VFs {
		if vf.PCIAddress == id {
			return vf, true
		}
	}
	return nodeconfig.VF{}, false
}

// refresh recomputes health and reports whether it changed.
func (p *Plugin) refresh() bool {
	var devs []*pluginapi.Device
	for _, vf := range p.VFs {
		d := &pluginapi.Device{ID: vf.PCIAddress, Health: pluginapi.Unhealthy}
		if p.Health == nil || p.Health.Healthy(vf) {
			d.Health = pluginapi.Healthy
		}
		if vf.NUMANode >= 0 {
			d.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(vf.NUMANode)}}}
		}
		devs = append(devs, d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := len(devs) != len(p.devices)
	for i := range devs {
		if !changed && (devs[i].ID != p.devices[i].ID || devs[i].Health != p.devices[i].Health) {
			changed = true
		}
	}
	p.devices = devs
	return changed
}

func (p *Plugin) snapshot() []*pluginapi.Device {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.devices)
}

// GetDevicePluginOptions implements pluginapi.DevicePluginServer.
func (p *Plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// ListAndWatch implements pluginapi.DevicePluginServer: the devices now,
// then again whenever their health changes.
func (p *Plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	p.refresh()
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.snapshot()}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-p.update:
			if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.snapshot()}); err != nil {
				return err
			}
		}
	}
}

// GetPreferredAllocation implements pluginapi.DevicePluginServer: the
// devices that must be included, then as many as needed from the NUMA node
// with the most available devices (so a pod's VFs share a NUMA node when
// they can).
func (p *Plugin) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, creq := range req.ContainerRequests {
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{
			DeviceIDs: p.prefer(creq.AvailableDeviceIDs, creq.MustIncludeDeviceIDs, int(creq.AllocationSize)),
		})
	}
	return resp, nil
}

func (p *Plugin) numa(id string) int {
	if vf, ok := p.byPCI(id); ok {
		return vf.NUMANode
	}
	return -1
}

func (p *Plugin) prefer(available, must []string, size int) []string {
	chosen := slices.Clone(must)
	count := map[int]int{}
	for _, id := range must {
		count[p.numa(id)] += 1000 // stay with the must-haves' node
	}
	var rest []string
	for _, id := range available {
		if !slices.Contains(chosen, id) {
			rest = append(rest, id)
			count[p.numa(id)]++
		}
	}
	sort.SliceStable(rest, func(i, j int) bool {
		ci, cj := count[p.numa(rest[i])], count[p.numa(rest[j])]
		if ci != cj {
			return ci > cj
		}
		return rest[i] < rest[j]
	})
	for _, id := range rest {
		if len(chosen) >= size {
			break
		}
		chosen = append(chosen, id)
	}
	return chosen
}

// Allocate implements pluginapi.DevicePluginServer: PCIDEVICE_<RESOURCE>
// with the PCI addresses, and for vfio VFs the container and group
// devices.
func (p *Plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	devRoot := p.DevRoot
	if devRoot == "" {
		devRoot = "/dev"
	}
	resp := &pluginapi.AllocateResponse{}
	for _, creq := range req.ContainerRequests {
		cresp := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{}}
		var ids []string
		vfioContainer := false
		for _, id := range creq.DevicesIds {
			vf, ok := p.byPCI(id)
			if !ok {
				return nil, fmt.Errorf("allocating %s: no VF %s on this node", p.Resource, id)
			}
			ids = append(ids, id)
			if vf.Mode == nodeconfig.SRIOVModeVFIO {
				group := filepath.Join(devRoot, "vfio", vf.IOMMUGroup)
				cresp.Devices = append(cresp.Devices, &pluginapi.DeviceSpec{ContainerPath: "/dev/vfio/" + vf.IOMMUGroup, HostPath: group, Permissions: "rw"})
				vfioContainer = true
			}
		}
		if vfioContainer {
			cresp.Devices = append(cresp.Devices, &pluginapi.DeviceSpec{ContainerPath: "/dev/vfio/vfio", HostPath: filepath.Join(devRoot, "vfio", "vfio"), Permissions: "rw"})
		}
		cresp.Envs[EnvName(p.Resource)] = strings.Join(ids, ",")
		resp.ContainerResponses = append(resp.ContainerResponses, cresp)
	}
	return resp, nil
}

// PreStartContainer implements pluginapi.DevicePluginServer (not asked for).
func (p *Plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// Run serves and registers the plugin until ctx ends, again after every
// kubelet restart.
func (p *Plugin) Run(ctx context.Context) {
	if p.Dir == "" {
		p.Dir = pluginapi.DevicePluginPath
	}
	if p.Interval == 0 {
		p.Interval = 5 * time.Second
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	p.update = make(chan struct{}, 1)
	go p.watchHealth(ctx)
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := p.serveOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		p.Log.Info("device plugin: serving again", "resource", p.Resource, "reason", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (p *Plugin) watchHealth(ctx context.Context) {
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.Changed:
		}
		if p.refresh() {
			select {
			case p.update <- struct{}{}:
			default:
			}
		}
	}
}

// serveOnce serves on the plugin's socket, registers with the kubelet and
// returns when the kubelet restarted or the socket was removed.
func (p *Plugin) serveOnce(ctx context.Context) error {
	kubeletSock := filepath.Join(p.Dir, filepath.Base(pluginapi.KubeletSocket))
	kubeletID, err := inode(kubeletSock)
	if err != nil {
		return fmt.Errorf("waiting for the kubelet: %w", err)
	}
	sock := filepath.Join(p.Dir, p.socketName())
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sock, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go srv.Serve(lis)
	defer func() {
		srv.Stop()
		_ = os.Remove(sock)
	}()
	p.refresh()
	if err := p.register(ctx, kubeletSock); err != nil {
		return err
	}
	p.Log.Info("device plugin registered", "resource", p.Resource, "devices", len(p.VFs))
	// The kubelet gives no signal when it restarts but a new
	// kubelet.sock, and it removes plugin sockets when it does.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if id, err := inode(kubeletSock); err != nil || id != kubeletID {
			return fmt.Errorf("the kubelet restarted")
		}
		if _, err := os.Stat(sock); err != nil {
			return fmt.Errorf("plugin socket removed")
		}
	}
}

func (p *Plugin) register(ctx context.Context, kubeletSock string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+kubeletSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to the kubelet: %w", err)
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     p.socketName(),
		ResourceName: p.Resource,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	})
	if err != nil {
		return fmt.Errorf("registering %s with the kubelet: %w", p.Resource, err)
	}
	return nil
}

func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("no inode for %s", path)
	}
	return st.Ino, nil
}

// Group splits a node's VFs by resource name, in a stable order.
func Group(vfs []nodeconfig.VF) map[string][]nodeconfig.VF {
	out := map[string][]nodeconfig.VF{}
	for _, vf := range vfs {
		out[vf.ResourceName] = append(out[vf.ResourceName], vf)
	}
	return out
}
