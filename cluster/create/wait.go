package create

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
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

// waitLimit bounds the waits of one create: --wait, or two minutes for
// the API server alone.
func (s *state) waitLimit() time.Duration {
	if s.opts.Wait > 0 {
		return s.opts.Wait
	}
	return 2 * time.Minute
}

// until polls check every interval until it is true or the create's wait
// limit passes; on timeout the error carries the tail of the first node's
// component logs, which berth reads itself.
func (s *state) until(ctx context.Context, what string, interval time.Duration, check func(ctx context.Context, c kubernetes.Interface) bool) error {
	client, err := Client(s.kc)
	if err != nil {
		return err
	}
	limit := s.waitLimit()
	waitCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err = wait.PollUntilContextCancel(waitCtx, interval, true, func(ctx context.Context) (bool, error) {
		return check(ctx, client), nil
	})
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s within %s%s", what, limit, s.logTail(context.WithoutCancel(ctx)))
}

// logTail returns the last lines of the first node's component logs, to
// explain a create that never became ready.
func (s *state) logTail(ctx context.Context) string {
	if s.plan == nil || len(s.plan.Nodes) == 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	node := s.plan.Nodes[0].Spec.Name
	var out bytes.Buffer
	if err := s.p.Exec(ctx, node, nil, &out, "sh", "-c", "tail -n 8 /var/log/berth/*.log"); err != nil || out.Len() == 0 {
		return ""
	}
	return fmt.Sprintf("; the last lines of %s's logs (/var/log/berth/):\n%s", node, strings.TrimRight(out.String(), "\n"))
}

func waitAPIServer(ctx context.Context, s *state) error {
	return s.until(ctx, "the API server did not answer", 100*time.Millisecond, func(ctx context.Context, c kubernetes.Interface) bool {
		_, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil
	})
}

func waitNodesReady(ctx context.Context, s *state) error {
	want := len(s.plan.Nodes)
	return s.until(ctx, fmt.Sprintf("not all %d node(s) were Ready", want), 250*time.Millisecond, func(ctx context.Context, c kubernetes.Interface) bool {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		ready := 0
		for i := range nodes.Items {
			if NodeReady(&nodes.Items[i]) {
				ready++
			}
		}
		return ready >= want
	})
}

// waitDNS waits until the kube-dns Service has a ready endpoint: what
// kube-proxy routes DNS queries by. The Deployment's available count
// trails it by two controller hops (ReplicaSet, then Deployment status),
// ~1 s in the create trace.
func waitDNS(ctx context.Context, s *state) error {
	return s.until(ctx, "CoreDNS was not available", 100*time.Millisecond, func(ctx context.Context, c kubernetes.Interface) bool {
		slices, err := c.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kube-dns"})
		if err != nil {
			return false
		}
		for _, sl := range slices.Items {
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					return true
				}
			}
		}
		return false
	})
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
