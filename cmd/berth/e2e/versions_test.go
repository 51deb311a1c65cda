//go:build e2e

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// TestUnsupportedVersionRefused: a version berth does not pin is refused
// before anything is made, and the message lists the supported ones.
func TestUnsupportedVersionRefused(t *testing.T) {
	const name = "e2e-v134"
	out, err := berth(t, "create", "cluster", "--name", name, "--kubernetes-version", "v1.34")
	if err == nil {
		t.Fatal("v1.34 was accepted")
	}
	for _, v := range versions.Supported() {
		if !strings.Contains(err.Error()+out, v) {
			t.Errorf("the refusal does not list %s: %v %s", v, err, out)
		}
	}
	assertNothingLeft(t, name)
	info := mustBerth(t, "version")
	for _, v := range versions.Supported() {
		if !strings.Contains(info, v) {
			t.Errorf("berth version does not list %s:\n%s", v, info)
		}
	}
}

// TestSecondMinor creates a cluster at another supported minor than the
// default and checks every node's kubelet and the API server run it. Its
// node image is a second Kubernetes build (~10 minutes on 2 cores with
// the module cache warm), so it runs when E2E_VERSIONS names the minors
// to check (`E2E_VERSIONS=v1.35 hack/test.sh`, or "all").
func TestSecondMinor(t *testing.T) {
	want := os.Getenv("E2E_VERSIONS")
	if want == "" {
		t.Skip("E2E_VERSIONS not set (e.g. E2E_VERSIONS=v1.35 or all)")
	}
	var minors []string
	if want == "all" {
		for _, r := range versions.Releases[1:] {
			minors = append(minors, r.Minor())
		}
	} else {
		minors = strings.Fields(strings.ReplaceAll(want, ",", " "))
	}
	for _, minor := range minors {
		r, err := versions.Resolve(minor)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(r.Kubernetes, func(t *testing.T) {
			name := "e2e-" + strings.ReplaceAll(r.Minor(), ".", "")
			client := createCluster(t, name, "--kubernetes-version", minor, "--workers", "1")
			v, err := client.Discovery().ServerVersion()
			if err != nil {
				t.Fatal(err)
			}
			if v.GitVersion != r.Kubernetes {
				t.Errorf("API server runs %s, want %s", v.GitVersion, r.Kubernetes)
			}
			nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes.Items) != 2 {
				t.Fatalf("%d nodes", len(nodes.Items))
			}
			for _, n := range nodes.Items {
				if n.Status.NodeInfo.KubeletVersion != r.Kubernetes || n.Status.NodeInfo.KubeProxyVersion != "" && n.Status.NodeInfo.KubeProxyVersion != r.Kubernetes {
					t.Errorf("%s runs kubelet %s, want %s", n.Name, n.Status.NodeInfo.KubeletVersion, r.Kubernetes)
				}
			}
			wide := mustBerth(t, "get", "clusters", "-o", "wide")
			if !strings.Contains(wide, name) || !strings.Contains(wide, r.Kubernetes) {
				t.Errorf("get clusters -o wide:\n%s", wide)
			}
		})
	}
}

// TestUnreachableImageRefused: a node image reference whose registry does
// not answer fails within seconds, before anything is made, naming it.
func TestUnreachableImageRefused(t *testing.T) {
	const name = "e2e-unreachable"
	// Port 1 on loopback: nothing listens, the engine's pull is refused.
	ref := "127.0.0.1:1/berth/node:v0"
	start := time.Now()
	_, err := berth(t, "create", "cluster", "--name", name, "--image", ref)
	if err == nil {
		t.Fatal("a create from an unreachable image reference succeeded")
	}
	if !strings.Contains(err.Error(), ref) {
		t.Errorf("the error does not name the reference: %v", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	assertNothingLeft(t, name)
}
