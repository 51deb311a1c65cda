package podnet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// PodCIDRAssigner writes the PodCIDR berth chose for each node at create
// into that Node's spec as soon as the node registers. It stands in for
// the controller-manager's node IPAM: the choice is made before any node
// starts, so each node's CNI configuration is already in place when its
// kubelet comes up. Every control-plane node runs one; they agree, since
// they hold the same table, and a Node's PodCIDR is only ever set once.
type PodCIDRAssigner struct {
	Client kubernetes.Interface
	// CIDRs maps node names to their PodCIDR.
	CIDRs map[string]string
	Log   *slog.Logger
}

// Run assigns PodCIDRs until ctx ends.
func (a *PodCIDRAssigner) Run(ctx context.Context) {
	factory := informers.NewSharedInformerFactory(a.Client, 10*time.Minute)
	nodes := factory.Core().V1().Nodes()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok && n.Spec.PodCIDR == "" && a.CIDRs[n.Name] != "" {
			queue.Add(n.Name)
		}
	}
	_, _ = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, n any) { enqueue(n) },
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		name, quit := queue.Get()
		if quit {
			return
		}
		if err := a.assign(ctx, name); err != nil {
			a.Log.Warn("setting the node's PodCIDR", "node", name, "err", err)
			queue.AddRateLimited(name)
		} else {
			queue.Forget(name)
		}
		queue.Done(name)
	}
}

// assign sets node name's PodCIDR unless it already has one.
func (a *PodCIDRAssigner) assign(ctx context.Context, name string) error {
	cidr := a.CIDRs[name]
	node, err := a.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if node.Spec.PodCIDR != "" {
		if node.Spec.PodCIDR != cidr {
			a.Log.Warn("node already has another PodCIDR; leaving it", "node", name, "podCIDR", node.Spec.PodCIDR, "berth", cidr)
		}
		return nil
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}}})
	if err != nil {
		return err
	}
	if _, err := a.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patching node %s: %w", name, err)
	}
	a.Log.Info("PodCIDR set", "node", name, "podCIDR", cidr)
	return nil
}
