package create

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/berth-dev/berth/cluster/progress"
)

// Client returns a clientset for a kubeconfig held in memory.
func Client(kc *clientcmdapi.Config) (*kubernetes.Clientset, error) {
	rc, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("building client: %w", err)
	}
	rc.QPS, rc.Burst = 50, 100
	rc.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(rc)
}

// waitReady waits for the API server, then (if opts.Wait > 0) for every
// node to be Ready and CoreDNS to be available.
func waitReady(ctx context.Context, kc *clientcmdapi.Config, plan *clusterPlan, opts Options) error {
	client, err := Client(kc)
	if err != nil {
		return err
	}
	hint := fmt.Sprintf("see the node logs with `docker exec %s sh -c 'tail -n 30 /var/log/berth/*.log'`", plan.nodes[0].spec.Name)
	limit := opts.Wait
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	waitCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := progress.Run(opts.Status, "waiting for the API server", func() error {
		return poll(waitCtx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err == nil, nil
		})
	}); err != nil {
		return fmt.Errorf("the API server did not answer within %s: %w; %s", limit, err, hint)
	}
	if opts.Wait <= 0 {
		return nil
	}
	want := len(plan.nodes)
	if err := progress.Run(opts.Status, fmt.Sprintf("waiting for %d node(s) to be Ready", want), func() error {
		return poll(waitCtx, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
			nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			ready := 0
			for _, n := range nodes.Items {
				if NodeReady(&n) {
					ready++
				}
			}
			return ready >= want, nil
		})
	}); err != nil {
		return fmt.Errorf("nodes were not Ready within %s: %w; %s", opts.Wait, err, hint)
	}
	if err := progress.Run(opts.Status, "waiting for cluster DNS (CoreDNS)", func() error {
		return poll(waitCtx, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
			d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			return d.Status.AvailableReplicas > 0, nil
		})
	}); err != nil {
		return fmt.Errorf("CoreDNS was not available within %s: %w; %s", opts.Wait, err, hint)
	}
	return nil
}

// NodeReady reports whether a node's Ready condition is true.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func poll(ctx context.Context, every time.Duration, check func(context.Context) (bool, error)) error {
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := check(reqCtx)
		cancel()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
