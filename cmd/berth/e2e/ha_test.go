//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var namespace = corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "survives"}}

// TestHighAvailability runs only with E2E_HA=1 (hack/test.sh passes it
// through): three control-plane nodes form one etcd cluster behind the
// load balancer, and the API keeps answering when one of them stops.
func TestHighAvailability(t *testing.T) {
	if os.Getenv("E2E_HA") != "1" {
		t.Skip("set E2E_HA=1 to run the 3-control-plane test")
	}
	const name = "e2e-ha"
	client := createCluster(t, name, "--control-planes", "3")
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 3 {
		t.Fatalf("want 3 nodes, got %d", len(nodes.Items))
	}
	if out, err := exec.Command("docker", "stop", name+"-control-plane").CombinedOutput(); err != nil {
		t.Fatalf("stopping a control plane: %v: %s", err, out)
	}
	// Writes need an etcd quorum (2 of 3) and the load balancer must route
	// around the stopped node.
	eventually(t, "API writes with one control plane stopped", time.Minute, func() (bool, error) {
		_, err := client.CoreV1().Namespaces().Create(context.Background(), &namespace, metav1.CreateOptions{})
		return err == nil, err
	})
	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
}
