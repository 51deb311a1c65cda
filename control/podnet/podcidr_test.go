package podnet

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPodCIDRAssigner(t *testing.T) {
	node := func(name, cidr string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
		if cidr != "" {
			n.Spec.PodCIDRs = []string{cidr}
		}
		return n
	}
	// "a" registers before the assigner starts, "b" after; "c" already has
	// a PodCIDR (kept as it is); "stranger" is not in the table.
	client := fake.NewClientset(node("a", ""), node("c", "10.9.9.0/24"), node("stranger", ""))
	a := &PodCIDRAssigner{
		Client: client,
		CIDRs:  map[string]string{"a": "10.244.0.0/24", "b": "10.244.1.0/24", "c": "10.244.2.0/24"},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	if _, err := client.CoreV1().Nodes().Create(ctx, node("b", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{"a": "10.244.0.0/24", "b": "10.244.1.0/24", "c": "10.9.9.0/24", "stranger": ""}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]string{}
		ok := true
		for name, cidr := range want {
			n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got[name] = n.Spec.PodCIDR
			if n.Spec.PodCIDR != cidr || (cidr != "" && (len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != cidr)) {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PodCIDRs = %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}
