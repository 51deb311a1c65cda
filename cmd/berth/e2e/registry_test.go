//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// registryInfo is `berth get registry -o json`.
type registryInfo struct {
	Name      string   `json:"name"`
	Address   string   `json:"address"`
	InNetwork string   `json:"inNetworkAddress"`
	State     string   `json:"state"`
	Volume    string   `json:"volume"`
	Clusters  []string `json:"clusters"`
	Size      int64    `json:"sizeBytes"`
}

func getRegistry(t *testing.T) *registryInfo {
	t.Helper()
	var info *registryInfo
	if err := json.Unmarshal([]byte(mustBerth(t, "get", "registry", "-o", "json")), &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestRegistry is issue 12's local registry, as the docs tell a user to
// use it: create a cluster with --registry, `docker push` to
// localhost:5001 on the host, run that image in a pod; the registry
// survives `docker restart` and the cluster's deletion (with its
// images), and goes away with `berth delete registry`.
func TestRegistry(t *testing.T) {
	const name = "e2e-registry"
	const port = 5001
	if info := getRegistry(t); info != nil {
		t.Fatalf("a local registry exists (%s, used by %v): this test creates and deletes the machine's registry; delete it first with `berth delete registry`", info.Address, info.Clusters)
	}
	// Runs after the cluster's own cleanup (cleanups run last first).
	t.Cleanup(func() {
		if _, err := berth(t, "delete", "registry", "--yes"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	client := createCluster(t, name, "--registry")

	info := getRegistry(t)
	if info == nil || info.Address != fmt.Sprintf("localhost:%d", port) || info.InNetwork != "berth-registry:5000" || info.State != "running" || strings.Join(info.Clusters, ",") != name {
		t.Fatalf("get registry = %+v", info)
	}
	if out := mustBerth(t, "get", "registry"); !strings.Contains(out, "berth-registry") || !strings.Contains(out, name) {
		t.Errorf("get registry printed:\n%s", out)
	}

	// Push from the host, as a user does.
	ref := fmt.Sprintf("localhost:%d/berth-e2e/hello:reg", port)
	helloImage(t, ref)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", ref).Run() })
	if out, err := exec.Command("docker", "push", ref).CombinedOutput(); err != nil {
		t.Fatalf("docker push %s: %v\n%s", ref, err, out)
	}

	// A pod runs it, pulled by the node's containerd (never loaded).
	runPulledPod(t, client, "from-registry", ref)

	// The registry comes back after a restart, with its images: a new
	// pod (pull policy Always: the manifest is fetched again) runs.
	if out, err := exec.Command("docker", "restart", "berth-registry").CombinedOutput(); err != nil {
		t.Fatalf("docker restart berth-registry: %v\n%s", err, out)
	}
	runPulledPod(t, client, "after-restart", ref)
	// Its name on the cluster network works in a pod spec too.
	runPulledPod(t, client, "by-network-name", "berth-registry:5000/berth-e2e/hello:reg")

	// Deleting the cluster disconnects the registry; it and its images
	// stay.
	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
	info = getRegistry(t)
	if info == nil || info.State != "running" || len(info.Clusters) != 0 {
		t.Fatalf("after deleting the cluster, get registry = %+v", info)
	}
	if info.Size <= 0 {
		t.Errorf("the registry's volume is empty after a push: %d bytes", info.Size)
	}
	tags := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/v2/berth-e2e/hello/tags/list", port), 10*time.Second)
	if !strings.Contains(tags, `"reg"`) {
		t.Errorf("the pushed image is gone from the registry: %s", tags)
	}

	// A node image kept in the registry: pushed, its reference removed
	// from Docker, then pinned by digest in a create, which pulls it.
	nodeImageFromRegistry(t, port)

	// berth delete registry removes it and its volume.
	mustBerth(t, "delete", "registry")
	if info := getRegistry(t); info != nil {
		t.Errorf("after delete registry, get registry = %+v", info)
	}
	if out, err := exec.Command("docker", "volume", "inspect", "berth-registry-data").CombinedOutput(); err == nil {
		t.Errorf("the registry's volume is left:\n%s", out)
	}
}

// runPulledPod runs image in a pod that must pull it (pull policy
// Always) and waits until it runs.
func runPulledPod(t *testing.T, client kubernetes.Interface, pod, image string) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "hello", Image: image, ImagePullPolicy: corev1.PullAlways}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod "+pod+" ("+image+") running", 2*time.Minute, func() (bool, error) {
		got, err := client.CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cs := range got.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				return false, fmt.Errorf("%s: %s", w.Reason, w.Message)
			}
		}
		return got.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s", got.Status.Phase)
	})
}

// nodeImageFromRegistry pushes the node image to the local registry,
// removes that reference from Docker, and creates a cluster from it by
// digest: the create pulls it (verifying the digest) and the cluster is
// Ready. A wrong digest fails before anything is made. (The image's
// layers stay in Docker under berth/node:<version>, which other tests
// use: what is proven is the reference, the digest and the pull path.)
func nodeImageFromRegistry(t *testing.T, port int) {
	t.Helper()
	const name = "e2e-registry-pull"
	source := "berth/node:" + versions.Default().Kubernetes
	repo := fmt.Sprintf("localhost:%d/berth-e2e/node", port)
	tagged := repo + ":" + versions.Default().Kubernetes
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	docker("tag", source, tagged)
	docker("push", tagged)
	var pinned string
	for _, rd := range strings.Fields(docker("image", "inspect", "-f", `{{join .RepoDigests " "}}`, tagged)) {
		if strings.HasPrefix(rd, repo+"@sha256:") {
			pinned = rd
		}
	}
	if pinned == "" {
		t.Fatalf("no digest of %s after the push", repo)
	}
	_ = exec.Command("docker", "rmi", tagged).Run()
	_ = exec.Command("docker", "rmi", pinned).Run()
	if id, err := provider(t).ImageID(context.Background(), pinned); err != nil || id != "" {
		t.Fatalf("%s still in Docker after removing it (%q, %v)", pinned, id, err)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", pinned).Run() })

	wrong := repo + "@sha256:" + strings.Repeat("0", 64)
	if _, err := berth(t, "create", "cluster", "--name", name, "--image", wrong); err == nil {
		t.Error("a create from a digest the registry does not have succeeded")
	} else if !strings.Contains(err.Error(), wrong) {
		t.Errorf("the error does not name the reference: %v", err)
	}
	assertNothingLeft(t, name)

	client := createCluster(t, name, "--image", pinned)
	if id, err := provider(t).ImageID(context.Background(), pinned); err != nil || id == "" {
		t.Errorf("%s was not pulled (%q, %v)", pinned, id, err)
	}
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes %v, %v", nodes, err)
	}
	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
}
