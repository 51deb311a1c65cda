package sriov

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Plugin serves one resource name's VFs to the kubelet: the
// DevicePluginServer of the v1beta1 device plugin API.
type Plugin struct {
	pluginapi.UnimplementedDevicePluginServer

	resource string
	vfs      []nodeconfig.VF // sorted by PCI address
	byID     map[string]nodeconfig.VF
	// devRoot is the directory /dev/vfio is under ("/" in a node).
	devRoot string
	log     *slog.Logger

	mu      sync.Mutex
	healthy map[string]bool
	// changed is closed (and replaced) whenever health changes: every
	// ListAndWatch stream waits on it.
	changed chan struct{}
	// allocated records when the kubelet last allocated each device, so
	// that a VF which left the node's namespace for its pod stays healthy
	// even before the PodResources API lists it.
	allocated map[string]time.Time
}

// NewPlugin returns the plugin for resource's vfs. Every VF starts
// unhealthy until the first health check.
func NewPlugin(resource string, vfs []nodeconfig.VF, devRoot string, log *slog.Logger) *Plugin {
	p := &Plugin{
		resource:  resource,
		byID:      map[string]nodeconfig.VF{},
		devRoot:   devRoot,
		log:       log.With("resource", resource),
		healthy:   map[string]bool{},
		changed:   make(chan struct{}),
		allocated: map[string]time.Time{},
	}
	for _, vf := range vfs {
		if vf.ResourceName != resource {
			continue
		}
		p.vfs = append(p.vfs, vf)
		p.byID[vf.PCIAddress] = vf
	}
	sort.Slice(p.vfs, func(i, j int) bool { return p.vfs[i].PCIAddress < p.vfs[j].PCIAddress })
	return p
}

// Resource is the extended resource name the plugin serves.
func (p *Plugin) Resource() string { return p.resource }

// SocketName is the plugin's socket file in the kubelet's device plugin
// directory.
func (p *Plugin) SocketName() string {
	return "berth-sriov-" + strings.NewReplacer("/", "_").Replace(p.resource) + ".sock"
}

// options is what the plugin tells the kubelet it supports.
func options() *pluginapi.DevicePluginOptions {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}
}

// SetHealth records each device's health (by PCI address; devices not
// named are unhealthy) and wakes every ListAndWatch stream when anything
// changed. It reports whether anything did.
func (p *Plugin) SetHealth(healthy map[string]bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for _, vf := range p.vfs {
		if p.healthy[vf.PCIAddress] != healthy[vf.PCIAddress] {
			changed = true
		}
	}
	if !changed {
		return false
	}
	p.healthy = map[string]bool{}
	for _, vf := range p.vfs {
		p.healthy[vf.PCIAddress] = healthy[vf.PCIAddress]
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return true
}

// devices returns the device list as ListAndWatch sends it, and the
// channel closed at the next change.
func (p *Plugin) devices() ([]*pluginapi.Device, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*pluginapi.Device, 0, len(p.vfs))
	for _, vf := range p.vfs {
		d := &pluginapi.Device{ID: vf.PCIAddress, Health: pluginapi.Unhealthy}
		if p.healthy[vf.PCIAddress] {
			d.Health = pluginapi.Healthy
		}
		if vf.NUMANode >= 0 {
			d.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(vf.NUMANode)}}}
		}
		out = append(out, d)
	}
	return out, p.changed
}

// recentlyAllocated reports whether the kubelet allocated device id
// within window before now.
func (p *Plugin) recentlyAllocated(id string, now time.Time, window time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.allocated[id]
	return ok && now.Sub(at) < window
}

// GetDevicePluginOptions tells the kubelet to ask for preferred
// allocations (NUMA locality).
func (p *Plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return options(), nil
}

// ListAndWatch sends the devices and their health, then the list again at
// every health change, until the kubelet goes away.
func (p *Plugin) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	for {
		devs, changed := p.devices()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return fmt.Errorf("sending devices of %s: %w", p.resource, err)
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// Allocate returns, for each container, PCIDEVICE_<RESOURCE> (and its
// _INFO companion) naming the container's devices and, for vfio devices,
// the vfio container device and each group's device.
func (p *Plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	now := time.Now()
	for _, creq := range req.ContainerRequests {
		var vfs []nodeconfig.VF
		for _, id := range creq.DevicesIds {
			vf, ok := p.byID[id]
			if !ok {
				return nil, status.Errorf(codes.InvalidArgument, "%s: unknown device %q", p.resource, id)
			}
			vfs = append(vfs, vf)
		}
		cresp, err := p.containerResponse(vfs)
		if err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		resp.ContainerResponses = append(resp.ContainerResponses, cresp)
		p.mu.Lock()
		for _, vf := range vfs {
			p.allocated[vf.PCIAddress] = now
		}
		p.mu.Unlock()
		p.log.Info("allocated", "devices", creq.DevicesIds)
	}
	return resp, nil
}

func (p *Plugin) containerResponse(vfs []nodeconfig.VF) (*pluginapi.ContainerAllocateResponse, error) {
	ids := make([]string, 0, len(vfs))
	for _, vf := range vfs {
		ids = append(ids, vf.PCIAddress)
	}
	info, err := infoEnv(vfs)
	if err != nil {
		return nil, err
	}
	cresp := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{
		EnvName(p.resource):     strings.Join(ids, ","),
		InfoEnvName(p.resource): info,
	}}
	seen := map[string]bool{}
	addDevice := func(path string) error {
		if seen[path] {
			return nil
		}
		seen[path] = true
		host := filepath.Join(p.devRoot, path)
		if _, err := os.Stat(host); err != nil {
			return fmt.Errorf("%s: %w", p.resource, err)
		}
		cresp.Devices = append(cresp.Devices, &pluginapi.DeviceSpec{HostPath: host, ContainerPath: path, Permissions: "rw"})
		return nil
	}
	for _, vf := range vfs {
		if vf.Mode != nodeconfig.SRIOVModeVFIO {
			continue
		}
		if err := addDevice(vfioContainerDevice); err != nil {
			return nil, err
		}
		if err := addDevice(vfioGroupDevice(vf.IOMMUGroup)); err != nil {
			return nil, err
		}
	}
	return cresp, nil
}

// GetPreferredAllocation prefers devices on one NUMA node: the node of
// the devices the container must get, else one node that has enough.
func (p *Plugin) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	numa := map[string]int{}
	for _, vf := range p.vfs {
		numa[vf.PCIAddress] = vf.NUMANode
	}
	for _, creq := range req.ContainerRequests {
		ids := preferNUMA(numa, creq.AvailableDeviceIDs, creq.MustIncludeDeviceIDs, int(creq.AllocationSize))
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// preferNUMA picks size devices: every one of must, then available ones
// from the NUMA nodes of must, then from a node that can give all the
// rest (the smallest such node: best fit), then from the fullest nodes.
// Devices without a NUMA node (-1) come last; ties go to the lower node
// and the lower PCI address, so the choice is stable.
func preferNUMA(numa map[string]int, available, must []string, size int) []string {
	chosen := []string{}
	taken := map[string]bool{}
	for _, id := range must {
		if !taken[id] {
			taken[id] = true
			chosen = append(chosen, id)
		}
	}
	need := size - len(chosen)
	if need <= 0 {
		return chosen
	}
	preferred := map[int]bool{}
	for _, id := range chosen {
		preferred[numa[id]] = true
	}
	groups := map[int][]string{}
	for _, id := range available {
		if taken[id] {
			continue
		}
		taken[id] = true
		n, ok := numa[id]
		if !ok {
			n = -1
		}
		groups[n] = append(groups[n], id)
	}
	nodes := make([]int, 0, len(groups))
	for n, ids := range groups {
		sort.Strings(ids)
		nodes = append(nodes, n)
	}
	rank := func(n int) (int, int) {
		pref, fits := 0, 0
		if preferred[n] && n >= 0 {
			pref = 1
		}
		if len(groups[n]) >= need && n >= 0 {
			fits = 1
		}
		return pref, fits
	}
	sort.Slice(nodes, func(i, j int) bool {
		a, b := nodes[i], nodes[j]
		pa, fa := rank(a)
		pb, fb := rank(b)
		switch {
		case pa != pb:
			return pa > pb
		case fa != fb:
			return fa > fb
		case (a < 0) != (b < 0):
			return a >= 0
		case len(groups[a]) != len(groups[b]) && fa == 1:
			// Best fit: keep the bigger nodes for bigger requests.
			return len(groups[a]) < len(groups[b])
		case len(groups[a]) != len(groups[b]):
			return len(groups[a]) > len(groups[b])
		}
		return a < b
	})
	for _, n := range nodes {
		for _, id := range groups[n] {
			if need == 0 {
				return chosen
			}
			chosen = append(chosen, id)
			need--
		}
	}
	return chosen
}
