package sriov

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Options configure Run. Only VFs and Log are required; the rest default
// to the paths inside a node.
type Options struct {
	VFs []nodeconfig.VF
	Log *slog.Logger
	// PluginDir is the kubelet's device plugin directory.
	PluginDir string
	// DevRoot is the directory /dev/vfio is under.
	DevRoot string
	// PodResourcesSocket is the kubelet's PodResources API socket.
	PodResourcesSocket string
}

func (o *Options) complete() {
	if o.PluginDir == "" {
		o.PluginDir = pluginapi.DevicePluginPath
	}
	if o.DevRoot == "" {
		o.DevRoot = "/"
	}
	if o.PodResourcesSocket == "" {
		o.PodResourcesSocket = PodResourcesSocket
	}
}

// allocationGrace is how long a VF missing from the node's namespace is
// kept healthy after Allocate when the PodResources API does not (yet, or
// no longer reachable) say which pod has it.
const allocationGrace = 2 * time.Minute

// recheckInterval is how often health is checked without a netlink event
// (vfio devices, allocations that ended).
const recheckInterval = 10 * time.Second

// Run serves a device plugin for each resource name among o.VFs until ctx
// ends: it waits for the kubelet, registers, keeps every device's health
// current and registers again whenever the kubelet restarts. Nothing in
// it is fatal: failures are logged and retried.
func Run(ctx context.Context, o Options) {
	o.complete()
	var plugins []*Plugin
	resources := map[string]bool{}
	for resource, vfs := range ByResource(o.VFs) {
		plugins = append(plugins, NewPlugin(resource, vfs, o.DevRoot, o.Log))
		resources[resource] = true
	}
	sort.Slice(plugins, func(i, j int) bool { return plugins[i].resource < plugins[j].resource })
	h := &healthChecker{
		plugins: plugins,
		devRoot: o.DevRoot,
		links:   NodeLinks,
		allocated: func(ctx context.Context) (map[string]bool, error) {
			return AllocatedDevices(ctx, o.PodResourcesSocket, resources)
		},
		log: o.Log,
	}
	h.check(ctx)
	e := endpoint{dir: o.PluginDir, poll: 2 * time.Second, retry: time.Second, maxRetry: 30 * time.Second}
	var wg sync.WaitGroup
	for _, p := range plugins {
		wg.Go(func() { p.serve(ctx, e) })
	}
	wg.Go(func() { h.run(ctx, recheckInterval) })
	wg.Wait()
}

// Link is what identifies a network interface: its name and MAC.
type Link struct{ Name, MAC string }

// NodeLinks lists the interfaces of the node's network namespace.
func NodeLinks() ([]Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		out = append(out, Link{Name: a.Name, MAC: a.HardwareAddr.String()})
	}
	return out, nil
}

// healthChecker decides every device's health: a netdevice VF is healthy
// while its interface is in the node's namespace (by name, or by MAC if
// it was renamed) or while it is allocated to a pod (it lives in the
// pod's namespace then); a vfio VF while its group device exists.
type healthChecker struct {
	plugins []*Plugin
	devRoot string
	links   func() ([]Link, error)
	// allocated returns the device IDs the kubelet allocated to pods.
	allocated func(context.Context) (map[string]bool, error)
	log       *slog.Logger

	// lastAllocated is allocated's last answer, used while the kubelet
	// does not answer.
	lastAllocated map[string]bool
}

// run re-checks health on every link change in the node's namespace and
// every interval until ctx ends.
func (h *healthChecker) run(ctx context.Context, interval time.Duration) {
	updates := make(chan netlink.LinkUpdate, 64)
	subscribed := false
	if h.needsLinks() {
		err := netlink.LinkSubscribeWithOptions(updates, ctx.Done(), netlink.LinkSubscribeOptions{
			ErrorCallback: func(err error) { h.log.Warn("watching network interfaces", "err", err) },
		})
		if err != nil {
			h.log.Warn("watching network interfaces; checking every "+interval.String(), "err", err)
		}
		subscribed = err == nil
	}
	var linkEvents <-chan netlink.LinkUpdate
	if subscribed {
		linkEvents = updates
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-linkEvents:
			if !ok {
				linkEvents = nil
				continue
			}
			// A pod start brings a burst of link events: settle, then
			// check once.
			time.Sleep(50 * time.Millisecond)
			for len(updates) > 0 {
				<-updates
			}
		case <-tick.C:
		}
		h.check(ctx)
	}
}

func (h *healthChecker) needsLinks() bool {
	for _, p := range h.plugins {
		if HasNetdevice(p.vfs) {
			return true
		}
	}
	return false
}

// check computes every device's health and hands it to its plugin.
func (h *healthChecker) check(ctx context.Context) {
	var names, macs map[string]bool
	if h.needsLinks() {
		links, err := h.links()
		if err != nil {
			h.log.Warn("listing network interfaces", "err", err)
			return
		}
		names, macs = map[string]bool{}, map[string]bool{}
		for _, l := range links {
			names[l.Name] = true
			if l.MAC != "" {
				macs[strings.ToLower(l.MAC)] = true
			}
		}
	}
	now := time.Now()
	var allocated map[string]bool
	for _, p := range h.plugins {
		healthy := map[string]bool{}
		for _, vf := range p.vfs {
			switch vf.Mode {
			case nodeconfig.SRIOVModeVFIO:
				_, err := os.Stat(filepath.Join(h.devRoot, vfioGroupDevice(vf.IOMMUGroup)))
				healthy[vf.PCIAddress] = err == nil
			case nodeconfig.SRIOVModeNetdevice:
				if names[vf.Interface] || (vf.MAC != "" && macs[strings.ToLower(vf.MAC)]) {
					healthy[vf.PCIAddress] = true
					continue
				}
				// Gone from the node: fine if a pod has it. The
				// PodResources API is only asked when a VF is missing.
				if allocated == nil {
					allocated = h.podAllocations(ctx)
				}
				healthy[vf.PCIAddress] = allocated[vf.PCIAddress] || p.recentlyAllocated(vf.PCIAddress, now, allocationGrace)
			}
		}
		if p.SetHealth(healthy) {
			var bad []string
			for _, vf := range p.vfs {
				if !healthy[vf.PCIAddress] {
					bad = append(bad, vf.PCIAddress)
				}
			}
			h.log.Info("device health changed", "resource", p.resource, "devices", len(p.vfs), "unhealthy", bad)
		}
	}
}

func (h *healthChecker) podAllocations(ctx context.Context) map[string]bool {
	got, err := h.allocated(ctx)
	if err != nil {
		h.log.Debug("asking the kubelet which devices pods have", "err", err)
		if h.lastAllocated != nil {
			return h.lastAllocated
		}
		return map[string]bool{}
	}
	h.lastAllocated = got
	return got
}
