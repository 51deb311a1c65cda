package sriov

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// PodResourcesSocket is the kubelet's pod-resources API.
const PodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// NodeHealth is the Checker inside a node: a netdevice VF is healthy when
// its netdev is in the node's network namespace (found by name or MAC) or
// the kubelet has allocated it to a pod (the CNI plugin moved it there); a
// vfio VF when its group device exists.
type NodeHealth struct {
	DevRoot string
	// Allocated returns the device IDs the kubelet has allocated to pods
	// (nil: ask the pod-resources API).
	Allocated func() map[string]bool
	// Links lists the node's network interfaces by name and MAC (nil:
	// netlink).
	Links func() (map[string]bool, error)
}

// Healthy implements Checker.
func (h NodeHealth) Healthy(vf nodeconfig.VF) bool {
	if vf.Mode == nodeconfig.SRIOVModeVFIO {
		root := h.DevRoot
		if root == "" {
			root = "/dev"
		}
		_, err := os.Stat(filepath.Join(root, "vfio", vf.IOMMUGroup))
		return err == nil
	}
	links := h.Links
	if links == nil {
		links = nodeLinks
	}
	if have, err := links(); err == nil && (have[vf.Interface] || (vf.MAC != "" && have[strings.ToLower(vf.MAC)])) {
		return true
	}
	allocated := h.Allocated
	if allocated == nil {
		allocated = allocatedDevices
	}
	return allocated()[vf.PCIAddress]
}

// nodeLinks returns the names and MACs of the node's interfaces.
func nodeLinks() (map[string]bool, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, l := range links {
		have[l.Attrs().Name] = true
		if mac := l.Attrs().HardwareAddr; len(mac) > 0 {
			have[strings.ToLower(mac.String())] = true
		}
	}
	return have, nil
}

// allocatedDevices asks the kubelet which device IDs pods hold.
func allocatedDevices() map[string]bool {
	out := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+PodResourcesSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return out
	}
	defer conn.Close()
	resp, err := podresourcesv1.NewPodResourcesListerClient(conn).List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return out
	}
	for _, pod := range resp.PodResources {
		for _, c := range pod.Containers {
			for _, d := range c.Devices {
				for _, id := range d.DeviceIds {
					out[id] = true
				}
			}
		}
	}
	return out
}

// linkEvents signals on every network interface change in the node.
func linkEvents(ctx context.Context, log *slog.Logger) <-chan struct{} {
	out := make(chan struct{}, 1)
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		close(done)
	}()
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		log.Warn("device plugin: no link events; health is polled", "err", err)
		return out
	}
	go func() {
		for range updates {
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// Run serves every resource of the node's VFs to the kubelet until ctx
// ends.
func Run(ctx context.Context, vfs []nodeconfig.VF, log *slog.Logger) {
	if len(vfs) == 0 {
		return
	}
	changed := linkEvents(ctx, log)
	groups := Group(vfs)
	// One link event wakes every plugin.
	fan := make([]chan struct{}, 0, len(groups))
	for resource, group := range groups {
		ch := make(chan struct{}, 1)
		fan = append(fan, ch)
		p := &Plugin{Resource: resource, VFs: group, Health: NodeHealth{}, Changed: ch, Log: log}
		go p.Run(ctx)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			for _, ch := range fan {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
}
