//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestMultiNode is issue 3's proof on 1 control plane + 2 workers from a
// config file: pods on different workers reach each other by IP and by
// Service name, a NodePort answers from the host on every node, a PVC
// binds and is written, and all of it still works after `docker restart`
// of every node.
func TestMultiNode(t *testing.T) {
	const name = "e2e-three"
	client := createCluster(t, name, "--config", "testdata/three-nodes.yaml")

	var rows []struct{ Name, Role, Status, IP string }
	if err := json.Unmarshal([]byte(mustBerth(t, "get", "nodes", "--name", name, "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("want 3 nodes, got %+v", rows)
	}
	var ips []string
	for _, r := range rows {
		if r.Status != "Ready" {
			t.Errorf("node %s is %s", r.Name, r.Status)
		}
		ips = append(ips, r.IP)
	}
	eventually(t, "node role labels", 30*time.Second, func() (bool, error) {
		n, err := client.CoreV1().Nodes().Get(context.Background(), name+"-worker", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		_, ok := n.Labels["node-role.kubernetes.io/worker"]
		return ok && n.Labels["tier"] == "frontend", nil
	})

	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	// A second load finds the image everywhere and skips every node.
	mustBerth(t, "load", "image", helloRef, "--name", name)

	port := deployHello(t, client, "default", 2)
	workers := []string{name + "-worker", name + "-worker2"}
	pinned := map[string]*corev1.Pod{}
	for _, w := range workers {
		pinned[w] = runPinned(t, client, "srv-"+strings.TrimPrefix(w, name+"-"), w)
	}
	checks := func(stage string) {
		t.Helper()
		for _, ip := range ips {
			body := httpGet(t, fmt.Sprintf("http://%s:%d/", ip, port), 90*time.Second)
			if !strings.HasPrefix(body, "hello from") {
				t.Errorf("%s: NodePort on %s answered %q", stage, ip, body)
			}
		}
		a, b := pinned[workers[0]], pinned[workers[1]]
		a = refresh(t, client, a)
		b = refresh(t, client, b)
		out := execIn(t, name, a.Name, "/hello", "get", fmt.Sprintf("http://%s:8080/", b.Status.PodIP))
		if !strings.Contains(out, "hello from "+b.Name) {
			t.Errorf("%s: pod on %s reaching pod on %s by IP got %q", stage, workers[0], workers[1], out)
		}
		out = execIn(t, name, b.Name, "/hello", "get", "http://hello.default.svc.cluster.local/")
		if !strings.Contains(out, "hello from hello-") {
			t.Errorf("%s: pod reaching the hello Service by name got %q", stage, out)
		}
	}
	checks("after create")

	// PodCIDRs are berth's choice, in node order (the controller-manager's
	// node IPAM is off), and each pod's IP lies in its node's PodCIDR.
	for i, r := range rows {
		n, err := client.CoreV1().Nodes().Get(context.Background(), r.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("10.244.%d.0/24", i); n.Spec.PodCIDR != want || len(n.Spec.PodCIDRs) != 1 {
			t.Errorf("node %s: PodCIDR %q %v, want %s", r.Name, n.Spec.PodCIDR, n.Spec.PodCIDRs, want)
		}
		if p := pinned[r.Name]; p != nil {
			p = refresh(t, client, p)
			_, cidr, _ := net.ParseCIDR(n.Spec.PodCIDR)
			if ip := net.ParseIP(p.Status.PodIP); cidr == nil || ip == nil || !cidr.Contains(ip) {
				t.Errorf("pod %s on %s has IP %s, outside the node's PodCIDR %s", p.Name, r.Name, p.Status.PodIP, n.Spec.PodCIDR)
			}
		}
	}

	// Storage: a claim on the default class binds and a pod writes to it.
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Create(context.Background(), claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writer := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "writer", Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "w", Image: "docker.io/library/busybox:1.35-berth", ImagePullPolicy: corev1.PullNever,
				Command:      []string{"sh", "-c", "echo persisted > /data/file && cat /data/file"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), writer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the PVC's writer pod succeeded", 3*time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(context.Background(), "writer", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodSucceeded, fmt.Errorf("phase %s", p.Status.Phase)
	})
	pvc, _ := client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data", metav1.GetOptions{})
	if pvc.Status.Phase != corev1.ClaimBound {
		t.Errorf("PVC is %s, want Bound", pvc.Status.Phase)
	}

	// Every node restarted by Docker: the cluster comes back by itself.
	args := []string{"restart"}
	for _, r := range rows {
		args = append(args, r.Name)
	}
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker restart: %v: %s", err, out)
	}
	waitNodesReady(t, name, 3)
	waitAvailable(t, client, "default", "hello", 2)
	for _, w := range workers {
		eventually(t, "pinned pod running again on "+w, 2*time.Minute, func() (bool, error) {
			p := refresh(t, client, pinned[w])
			return p.Status.Phase == corev1.PodRunning && podReady(p), fmt.Errorf("phase %s", p.Status.Phase)
		})
	}
	checks("after docker restart")

	workloadCommands(t, name, client)

	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func refresh(t *testing.T, client kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := client.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// runPinned runs the hello server as a bare pod on node and waits for it.
func runPinned(t *testing.T, client kubernetes.Interface, podName, node string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "hello", Image: helloRef, ImagePullPolicy: corev1.PullNever,
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
			}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	eventually(t, "pod "+podName+" running", 2*time.Minute, func() (bool, error) {
		got = refresh(t, client, pod)
		return got.Status.Phase == corev1.PodRunning && got.Status.PodIP != "", fmt.Errorf("phase %s", got.Status.Phase)
	})
	return got
}

// execIn runs a command in a pod through berth's embedded kubectl.
func execIn(t *testing.T, cluster, pod string, cmd ...string) string {
	t.Helper()
	args := append([]string{"kubectl", "--context", "berth-" + cluster, "--", "exec", pod, "--"}, cmd...)
	c := exec.Command(berthBin, args...)
	c.Dir = repoRoot
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		t.Errorf("berth %s: %v: %s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
