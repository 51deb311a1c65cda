package podnet

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// routeProtocol marks the routes the agent owns, so stale ones can be
// found and removed without touching anyone else's.
const routeProtocol = netlink.RouteProtocol(0xbe)

// Agent keeps this node's pod network in step with the cluster's nodes.
type Agent struct {
	Client     kubernetes.Interface
	NodeName   string
	NodeIP     string
	PodSubnet  string
	CNIConfDir string
	ManageCNI  bool
	// SRIOV ends the CNI chain with berth's SR-IOV plugin (the node has
	// netdevice VFs).
	SRIOV       bool
	Log         *slog.Logger
	ApplyNFT    func(ctx context.Context, rules string) error
	lastCNIConf []byte
}

// Run watches nodes until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	rules, err := MasqueradeRules(a.PodSubnet)
	if err != nil {
		return err
	}
	if a.ManageCNI {
		for {
			if err := a.ApplyNFT(ctx, rules); err == nil {
				break
			} else {
				a.Log.Warn("installing masquerade rule", "err", err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
	}
	if err := a.waitForNodes(ctx); err != nil {
		return nil
	}
	factory := informers.NewSharedInformerFactory(a.Client, 5*time.Minute)
	nodes := factory.Core().V1().Nodes()
	kick := make(chan struct{}, 1)
	notify := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	_, _ = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, n any) { notify(n) },
		DeleteFunc: notify,
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			a.sync(list)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-tick.C:
		}
	}
}

func (a *Agent) sync(nodes []*corev1.Node) {
	var peers []Peer
	for _, n := range nodes {
		ip := InternalIP(n)
		if n.Name == a.NodeName && a.ManageCNI && n.Spec.PodCIDR != "" {
			if err := a.writeCNIConfig(n.Spec.PodCIDR); err != nil {
				a.Log.Error("writing CNI config", "err", err)
			}
		}
		peers = append(peers, Peer{PodCIDR: n.Spec.PodCIDR, NodeIP: ip})
	}
	if !a.ManageCNI {
		return
	}
	if err := a.syncRoutes(Routes(a.NodeIP, peers)); err != nil {
		a.Log.Error("syncing pod routes", "err", err)
	}
}

// InternalIP returns the node's InternalIP address, or "".
func InternalIP(n *corev1.Node) string {
	for _, addr := range n.Status.Addresses {
		if addr.Type == corev1.NodeInternalIP {
			return addr.Address
		}
	}
	return ""
}

func (a *Agent) writeCNIConfig(podCIDR string) error {
	conf, err := CNIConfig(podCIDR, a.SRIOV)
	if err != nil {
		return err
	}
	if bytes.Equal(conf, a.lastCNIConf) {
		return nil
	}
	changed, err := WriteCNIConfig(a.CNIConfDir, podCIDR, a.SRIOV)
	if err != nil {
		return err
	}
	a.lastCNIConf = conf
	if changed {
		a.Log.Info("pod network configured", "podCIDR", podCIDR)
	}
	return nil
}

// WriteCNIConfig writes the CNI configuration for podCIDR (and sriov, see
// CNIConfig) into dir (atomically, so containerd never loads half a file)
// unless it is there already, and reports whether it wrote.
func WriteCNIConfig(dir, podCIDR string, sriov bool) (bool, error) {
	conf, err := CNIConfig(podCIDR, sriov)
	if err != nil {
		return false, err
	}
	path := filepath.Join(dir, CNIConfFile)
	if existing, err := os.ReadFile(path); err == nil && bytes.Equal(existing, conf) {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, conf, 0o644); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	return true, nil
}

// waitForNodes returns once the agent's identity may list Nodes: until
// the API server has bootstrapped its RBAC policy a list is forbidden,
// and an informer would back off for seconds after such failures,
// delaying this node's routes to its peers.
func (a *Agent) waitForNodes(ctx context.Context) error {
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := a.Client.CoreV1().Nodes().List(reqCtx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
}

func (a *Agent) syncRoutes(want []Route) error {
	existing, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	wanted := map[string]bool{}
	var errs []string
	for _, r := range want {
		wanted[r.Dst.String()] = true
		route := &netlink.Route{Dst: r.Dst, Gw: r.Gateway, Protocol: routeProtocol}
		if err := netlink.RouteReplace(route); err != nil {
			errs = append(errs, fmt.Sprintf("%s via %s: %v", r.Dst, r.Gateway, err))
		}
	}
	for i := range existing {
		if existing[i].Dst != nil && !wanted[existing[i].Dst.String()] {
			if err := netlink.RouteDel(&existing[i]); err != nil {
				errs = append(errs, fmt.Sprintf("removing %s: %v", existing[i].Dst, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
