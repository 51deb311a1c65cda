package cluster

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/cluster/create"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/sriov"
)

// Stop stops every container of the cluster, keeping all its state.
// SR-IOV VFs go back to the host first, under their own names.
func Stop(ctx context.Context, p provider.Provider, name string) error {
	nodes, err := Nodes(ctx, p, name)
	if err != nil {
		return err
	}
	vfErr := sriov.ReclaimNodes(ctx, p, nodes)
	if err := p.StopCluster(ctx, name); err != nil {
		return fmt.Errorf("stopping cluster %q: %w", name, err)
	}
	if vfErr != nil {
		return fmt.Errorf("cluster %q stopped, but not every SR-IOV VF came back to the host: %w", name, vfErr)
	}
	return nil
}

// Start starts a stopped cluster and, if wait > 0, waits until every node
// is Ready again.
func Start(ctx context.Context, p provider.Provider, name string, wait time.Duration) error {
	nodes, err := Nodes(ctx, p, name)
	if err != nil {
		return err
	}
	if err := p.StartCluster(ctx, name); err != nil {
		return fmt.Errorf("starting cluster %q: %w", name, err)
	}
	// A restarted container has a new network namespace: its VFs go in
	// again.
	if err := sriov.AttachNodes(ctx, p, nodes); err != nil {
		return fmt.Errorf("starting cluster %q: attaching SR-IOV VFs: %w", name, err)
	}
	if wait <= 0 {
		return nil
	}
	client, err := Client(ctx, p, name)
	if err != nil {
		return err
	}
	return WaitNodesReady(ctx, client, len(KubernetesNodes(nodes)), wait)
}

// WaitNodesReady waits until want nodes report Ready.
func WaitNodesReady(ctx context.Context, client kubernetes.Interface, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			ready := 0
			for i := range nodes.Items {
				if create.NodeReady(&nodes.Items[i]) {
					ready++
				}
			}
			if ready >= want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes were not Ready within %s", timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
