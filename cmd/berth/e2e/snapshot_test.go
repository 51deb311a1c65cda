//go:build e2e

package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestSnapshot is issue 17's proof on 1 control plane + 2 workers: a
// Deployment behind a NodePort, a ConfigMap and a PVC with data are
// saved; the Deployment is deleted, the PVC written, the ConfigMap
// changed and a namespace added; the restore brings back exactly what
// was saved (objects compared, PVC data compared), the namespace is gone
// and the Service answers. A restore interrupted with SIGINT leaves the
// cluster as it was, and working.
func TestSnapshot(t *testing.T) {
	name := clusterName("snap-e2e")
	t.Setenv("BERTH_SNAPSHOT_DIR", t.TempDir())
	client := createCluster(t, name, "--config", "testdata/three-nodes.yaml")
	ctx := context.Background()

	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	port := deployHello(t, client, "default", 2)
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "fixtures"},
		Data:       map[string]string{"answer": "42"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	keeper := volumeKeeper(t, client)
	if got := strings.TrimSpace(execIn(t, name, keeper, "cat", "/data/f")); got != "saved" {
		t.Fatalf("the volume holds %q before the save", got)
	}

	var m struct {
		Name, Cluster, KubernetesVersion string
		Nodes                            []struct {
			Name   string
			Images []struct{ Name string }
		}
		EtcdBytes, VolumesBytes int64
	}
	if err := json.Unmarshal([]byte(mustBerth(t, "snapshot", "save", "golden", "--name", name, "-o", "json")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Cluster != name || len(m.Nodes) != 3 || m.EtcdBytes == 0 || m.VolumesBytes == 0 {
		t.Errorf("manifest: %+v", m)
	}
	for _, n := range m.Nodes {
		if n.Name != name+"-control-plane" && (len(n.Images) != 1 || !strings.Contains(n.Images[0].Name, "berth-e2e/hello")) {
			t.Errorf("node %s: loaded images recorded %+v, want the hello image", n.Name, n.Images)
		}
	}
	if out := mustBerth(t, "snapshot", "list", "-o", "json"); !strings.Contains(out, `"name": "golden"`) {
		t.Errorf("snapshot list: %s", out)
	}
	savedDep, err := client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	savedSvc, err := client.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Destroy things.
	if err := client.AppsV1().Deployments("default").Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the hello pods gone", 2*time.Minute, func() (bool, error) {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
		return err == nil && len(pods.Items) == 0, err
	})
	execIn(t, name, keeper, "sh", "-c", "echo changed > /data/f; echo extra > /data/g")
	if _, err := client.CoreV1().ConfigMaps("default").Patch(ctx, "fixtures", "application/merge-patch+json", []byte(`{"data":{"answer":"wrong"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "added"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Without a terminal, a restore needs --yes.
	if _, err := berth(t, "snapshot", "restore", "golden"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("restore without --yes and without a terminal: %v", err)
	}
	started := time.Now()
	mustBerth(t, "snapshot", "restore", "golden", "--yes")
	t.Logf("restore took %s", time.Since(started).Round(10*time.Millisecond))

	if _, err := client.CoreV1().Namespaces().Get(ctx, "added", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace added after the snapshot is still there (err %v)", err)
	}
	cm, err := client.CoreV1().ConfigMaps("default").Get(ctx, "fixtures", metav1.GetOptions{})
	if err != nil || cm.Data["answer"] != "42" {
		t.Errorf("ConfigMap after the restore: %v, %v", cm.Data, err)
	}
	dep, err := client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Deployment did not come back: %v", err)
	}
	if dep.UID != savedDep.UID || !equality.Semantic.DeepEqual(dep.Spec, savedDep.Spec) || !equality.Semantic.DeepEqual(dep.Labels, savedDep.Labels) {
		t.Errorf("the Deployment came back different:\nsaved %+v\nnow   %+v", savedDep.Spec, dep.Spec)
	}
	svc, err := client.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil || !equality.Semantic.DeepEqual(svc.Spec, savedSvc.Spec) {
		t.Errorf("the Service changed: %v", err)
	}
	waitAvailable(t, client, "default", "hello", 2)
	serves(t, name, port)
	if got := strings.TrimSpace(execIn(t, name, keeper, "sh", "-c", "cat /data/f; ls /data")); got != "saved\nf" {
		t.Errorf("the volume after the restore holds %q, want the saved file alone", got)
	}

	// An interrupted restore: the cluster stays as it was before it.
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "marker"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, after := range []time.Duration{700 * time.Millisecond, 1200 * time.Millisecond} {
		cmd := exec.Command(berthBin, "snapshot", "restore", "golden", "--yes")
		cmd.Dir = repoRoot
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		t.Logf("restore interrupted after %s: %v\n%s", after, err, out)
		if err == nil && !strings.Contains(out.String(), "Restored") {
			t.Errorf("interrupted restore: exit 0 without a report")
		}
		if err != nil && !strings.Contains(out.String(), "interrupted") {
			t.Errorf("interrupted restore failed for another reason: %s", out)
		}
		waitNodesReady(t, name, 3)
		if err != nil {
			if _, err := client.CoreV1().Namespaces().Get(ctx, "marker", metav1.GetOptions{}); err != nil {
				t.Errorf("after an interrupted restore the namespace made before it is gone: %v", err)
			}
		}
		waitAvailable(t, client, "default", "hello", 2)
		serves(t, name, port)
	}
	if entries, _ := os.ReadDir(os.Getenv("BERTH_SNAPSHOT_DIR")); len(entries) != 1 {
		t.Errorf("the snapshot directory holds %d entries, want golden alone (safety snapshots are removed)", len(entries))
	}

	mustBerth(t, "snapshot", "delete", "golden")
	if out := mustBerth(t, "snapshot", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("snapshot list after delete: %s", out)
	}
}

// TestFromSnapshot is issue 17's golden cluster: a cluster is set up
// once (a Deployment behind a NodePort, a loaded image, a ConfigMap, a
// PVC with data) and saved; the snapshot goes through export --images
// and import while Docker lacks its image; a second cluster made from
// the snapshot while the first still runs serves the same Deployment on
// its own nodes (from the moment it is created: never another pod on
// the NodePort), with the ConfigMap and the volume's data, every pod
// bound to its own nodes and only its own nodes registered; the first
// keeps serving; deleting the copy leaves nothing.
func TestFromSnapshot(t *testing.T) {
	first, name := clusterName("fs-golden"), clusterName("fs-copy")
	t.Setenv("BERTH_SNAPSHOT_DIR", t.TempDir())
	client := createCluster(t, first, "--config", "testdata/three-nodes.yaml")
	ctx := context.Background()
	// The test's own image, under a reference no other test uses: it is
	// removed from Docker and loaded again from the snapshot's archive.
	image := fmt.Sprintf("berth-e2e/hello-snapshot:%d", time.Now().UnixNano())
	helloImage(t, image)
	t.Cleanup(func() { _ = provider(t).RemoveImage(context.Background(), image) })
	mustBerth(t, "load", "image", image, "--name", first)
	port := deployHelloImage(t, client, "default", 2, image)
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "fixtures"},
		Data:       map[string]string{"answer": "42"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	volumeKeeper(t, client)
	logPodNetwork(t, first)
	mustBerth(t, "snapshot", "save", "golden", "--name", first)
	saved, err := client.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exportImportImages(t, first, image)

	t.Cleanup(func() { _, _ = berth(t, "delete", "cluster", "--name", name) })
	started := time.Now()
	mustBerth(t, withNodeImage([]string{"create", "cluster", "--from-snapshot", "golden", "--name", name, "--wait", "5m"})...)
	t.Logf("create --from-snapshot took %s", time.Since(started).Round(10*time.Millisecond))
	// At once: while the copy's kubelets start the snapshot's pods, the
	// NodePort is refused or answered by the app, never by another pod
	// (the restored pods' addresses were the first cluster's, which the
	// copy's nodes give to other pods).
	logPodNetwork(t, name)
	serves(t, name, port)
	copyClient := clientFor(t, "berth-"+name)

	cm, err := copyClient.CoreV1().ConfigMaps("default").Get(ctx, "fixtures", metav1.GetOptions{})
	if err != nil || cm.Data["answer"] != "42" {
		t.Errorf("ConfigMap in the copy: %v, %v", cm.Data, err)
	}
	dep, err := copyClient.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil || dep.UID != saved.UID {
		t.Fatalf("the Deployment in the copy: %v (uid %v, want %v)", err, dep.UID, saved.UID)
	}
	eventually(t, "the copy's 3 nodes registered, and only they", 2*time.Minute, func() (bool, error) {
		nodes, err := copyClient.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 3 {
			return false, err
		}
		for _, n := range nodes.Items {
			if !strings.HasPrefix(n.Name, name+"-") {
				return false, fmt.Errorf("node %s in the copy", n.Name)
			}
		}
		return true, nil
	})
	eventually(t, "every pod of the copy on its nodes and ready", 3*time.Minute, func() (bool, error) {
		pods, err := copyClient.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" && !strings.HasPrefix(p.Spec.NodeName, name+"-") {
				return false, fmt.Errorf("pod %s/%s is bound to %s", p.Namespace, p.Name, p.Spec.NodeName)
			}
			// The restored status says Running already: wait for the
			// copy's kubelets to report the pod ready anew.
			ready := p.Status.Phase == corev1.PodSucceeded
			for _, c := range p.Status.Conditions {
				ready = ready || c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.Time.Before(started.Truncate(time.Second))
			}
			if !ready {
				return false, nil
			}
		}
		return true, nil
	})
	// The snapshot's DaemonSet pods run on their mapped nodes, one per
	// node as in the first cluster: none was refused by its kubelet and
	// replaced by a second one.
	speakers := func(c kubernetes.Interface) (pods, nodes int) {
		list, err := c.CoreV1().Pods("metallb-system").List(ctx, metav1.ListOptions{LabelSelector: "component=speaker"})
		if err != nil {
			t.Fatal(err)
		}
		on := map[string]bool{}
		for _, p := range list.Items {
			on[p.Spec.NodeName] = true
		}
		return len(list.Items), len(on)
	}
	wantPods, _ := speakers(client)
	if pods, nodes := speakers(copyClient); wantPods == 0 || pods != wantPods || nodes != wantPods {
		t.Errorf("%d MetalLB speaker pods on %d nodes in the copy, want one on each of %d as in the first cluster", pods, nodes, wantPods)
	}
	logPodNetwork(t, name)
	serves(t, name, port)
	pods, err := copyClient.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=keeper"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("keeper pods in the copy: %v", err)
	}
	if got := strings.TrimSpace(execIn(t, name, pods.Items[0].Name, "cat", "/data/f")); got != "saved" {
		t.Errorf("the copy's volume holds %q, want the snapshot's", got)
	}
	// CoreDNS, restored from the snapshot, is ready again on the copy's
	// nodes: its readiness needs its informers synced from the copy's API
	// server with the pod's service-account token.
	eventually(t, "CoreDNS ready again in the copy", 2*time.Minute, func() (bool, error) {
		dns, err := copyClient.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		if err != nil || len(dns.Items) == 0 {
			return false, err
		}
		for _, p := range dns.Items {
			ready := false
			for _, c := range p.Status.Conditions {
				ready = ready || c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && c.LastTransitionTime.After(started)
			}
			if !ready || !strings.HasPrefix(p.Spec.NodeName, name+"-") {
				return false, nil
			}
		}
		return true, nil
	})
	// The first cluster is untouched.
	serves(t, first, port)

	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
}

// exportImportImages moves snapshot golden of cluster through export
// --images and import as to a machine without its image: an archive
// written while Docker has the image (taken from Docker) and one written
// while it does not (taken from a node of cluster) each bring it back
// into Docker on import. It leaves golden imported from the first
// archive and the image in Docker only because that import loaded it.
func exportImportImages(t *testing.T, cluster, image string) {
	t.Helper()
	ctx := context.Background()
	p := provider(t)
	dir := t.TempDir()
	fromDocker, fromNode := dir+"/docker.tar", dir+"/node.tar"
	full := "docker.io/" + image
	mustBerth(t, "snapshot", "export", "golden", fromDocker, "--images")
	if src := archivedImageSource(t, fromDocker, full); src != "docker" {
		t.Errorf("export --images with the image in Docker took it from %q", src)
	}
	removed := func() {
		t.Helper()
		if err := p.RemoveImage(ctx, image); err != nil {
			t.Fatal(err)
		}
		if id, err := p.ImageID(ctx, image); err != nil || id != "" {
			t.Fatalf("%s still in Docker (%q, %v)", image, id, err)
		}
	}
	removed()
	mustBerth(t, "snapshot", "export", "golden", fromNode, "--images")
	if src := archivedImageSource(t, fromNode, full); !strings.HasPrefix(src, cluster+"-") {
		t.Errorf("export --images without the image in Docker took it from %q, want a node of %s", src, cluster)
	}
	for _, archive := range []string{fromNode, fromDocker} {
		mustBerth(t, "snapshot", "delete", "golden")
		if _, err := berth(t, "snapshot", "import", archive); err != nil {
			t.Fatal(err)
		}
		if id, err := p.ImageID(ctx, image); err != nil || id == "" {
			t.Fatalf("after importing %s, Docker lacks %s (%v)", archive, image, err)
		}
		if archive == fromNode {
			removed()
		}
	}
}

// archivedImageSource reads where an archive written with --images took
// image from (its images/index.json).
func archivedImageSource(t *testing.T, archive, image string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s has no images/index.json: %v", archive, err)
		}
		if h.Name != "golden/images/index.json" {
			continue
		}
		var index []struct{ Name, Source string }
		if err := json.NewDecoder(tr).Decode(&index); err != nil {
			t.Fatal(err)
		}
		for _, img := range index {
			if img.Name == image {
				return img.Source
			}
		}
		t.Fatalf("%s does not hold %s: %+v", archive, image, index)
	}
}

// volumeKeeper runs a Deployment with a PVC on the default class whose
// pod writes "saved" to /data/f, and returns its pod's name.
func volumeKeeper(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	ctx := context.Background()
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "keeper"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "keeper", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64(1)),
					Containers: []corev1.Container{{
						Name: "k", Image: "docker.io/library/busybox:1.35-berth", ImagePullPolicy: corev1.PullNever,
						Command:      []string{"sh", "-c", "[ -f /data/f ] || echo saved > /data/f; exec sleep 100000"},
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
					}},
					Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, client, "default", "keeper", 1)
	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=keeper"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("keeper pods: %v", err)
	}
	return pods.Items[0].Name
}

// serves checks that the hello NodePort answers on every node. Each try
// is a new connection (a kept-alive one would stay with whichever pod it
// first reached, and hide whether the node forwards right now). Until
// the app answers, a refused or unanswered connection is retried; an
// answer from anything else fails at once: the node forwarded the
// NodePort to another pod.
func serves(t *testing.T, cluster string, port int32) {
	t.Helper()
	var rows []struct{ Name, IP string }
	if err := json.Unmarshal([]byte(mustBerth(t, "get", "nodes", "--name", cluster, "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, r := range rows {
		url := fmt.Sprintf("http://%s:%d/", r.IP, port)
		var last error
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			resp, err := client.Get(url)
			if err != nil {
				last = err
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.HasPrefix(string(body), "hello from") {
				last = nil
				break
			}
			last = fmt.Errorf("answered %q (%s): another pod's port", body, resp.Status)
			break
		}
		if last != nil {
			// What the cluster thinks, for the failure's reader.
			out, _ := berth(t, "kubectl", "--context", "berth-"+cluster, "--", "get", "pods,endpointslices", "-A", "-o", "wide")
			nft, _ := exec.Command("docker", "exec", r.Name, "nft", "list", "ruleset").CombinedOutput()
			var sandboxes strings.Builder
			for _, n := range rows {
				ips, _ := exec.Command("docker", "exec", n.Name, "sh", "-c", sandboxIPsScript).CombinedOutput()
				fmt.Fprintf(&sandboxes, "%s:\n%s", n.Name, ips)
			}
			t.Fatalf("NodePort %s on %s: %v\n%s\nsandboxes (ip namespace name uid):\n%s\nnftables of %s:\n%s", url, r.Name, last, out, &sandboxes, r.Name, nft)
		}
	}
}

// logPodNetwork logs, for a failure's reader, the pods' addresses as the
// API has them and as each node's IPAM handed them out.
func logPodNetwork(t *testing.T, cluster string) {
	t.Helper()
	var rows []struct{ Name string }
	if err := json.Unmarshal([]byte(mustBerth(t, "get", "nodes", "--name", cluster, "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, n := range rows {
		ips, _ := exec.Command("docker", "exec", n.Name, "sh", "-c", sandboxIPsScript).CombinedOutput()
		fmt.Fprintf(&b, "%s:\n%s", n.Name, ips)
	}
	out, _ := berth(t, "kubectl", "--context", "berth-"+cluster, "--", "get", "pods,endpointslices", "-A", "-o", "wide")
	t.Logf("pods and slices of %s:\n%s\nIPAM (ip namespace name uid):\n%s", cluster, out, &b)
}

// sandboxIPsScript lists the addresses host-local IPAM handed out on a
// node, each with the pod whose sandbox holds it (containerd's labels):
// "ip namespace name uid".
const sandboxIPsScript = `for f in /var/lib/cni/networks/*/*.*.*.*; do
  id=$(head -n1 "$f")
  echo "${f##*/} $(ctr -n k8s.io containers info "$id" 2>/dev/null | grep -E '"io.kubernetes.pod.(namespace|name|uid)"' | sed 's/.*: "\(.*\)".*/\1/' | tr '\n' ' ')"
done
for ns in $(ip netns list | cut -d' ' -f1); do
  echo "netns $ns: $(ip -n "$ns" -4 -o addr show | awk '$2 != "lo" {print $4}' | tr '\n' ' ')"
done`
