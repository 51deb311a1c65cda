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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/nodeimage/versions"
)

const helloRef = "berth-e2e/hello:1"

// TestSingleNode is issue 2's proof: a one-node cluster runs a loaded
// image, serves it to the host, resolves cluster DNS from a pod, brings a
// killed component back, and leaves nothing behind when deleted.
func TestSingleNode(t *testing.T) {
	const name = "e2e-one"
	ctx := context.Background()
	// A bad name is refused before anything is made.
	if _, err := berth(t, "create", "cluster", "--name", "Bad_Name"); err == nil {
		t.Fatal("an invalid cluster name was accepted")
	}
	assertNothingLeft(t, "Bad_Name")

	client := createCluster(t, name)
	// A name that is taken is refused.
	if _, err := berth(t, "create", "cluster", "--name", name); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("creating a taken name: %v", err)
	}

	var rows []struct{ Name, Role, Status, Version, IP string }
	if err := json.Unmarshal([]byte(mustBerth(t, "get", "nodes", "--name", name, "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if want := versions.Default().Kubernetes; len(rows) != 1 || rows[0].Status != "Ready" || rows[0].Version != want {
		t.Fatalf("get nodes = %+v, want one Ready node at %s", rows, want)
	}
	nodeIP := rows[0].IP
	if !strings.Contains(mustBerth(t, "get", "clusters"), name) {
		t.Error("get clusters does not list the cluster")
	}
	if kc := mustBerth(t, "get", "kubeconfig", "--name", name); !strings.Contains(kc, "berth-"+name) || !strings.Contains(kc, "127.0.0.1") {
		t.Errorf("get kubeconfig printed:\n%s", kc)
	}

	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)

	port := deployHello(t, client, "default", 1)
	body := httpGet(t, fmt.Sprintf("http://%s:%d/", nodeIP, port), 90*time.Second)
	if !strings.HasPrefix(body, "hello from hello-") {
		t.Errorf("the pod answered %q", body)
	}

	out := lookupFromPod(t, client, "kubernetes.default.svc.cluster.local")
	if !strings.Contains(out, "10.96.0.1") {
		t.Errorf("kubernetes.default.svc.cluster.local resolved to %q, want 10.96.0.1", out)
	}

	// A component killed inside the node is restarted by the supervisor.
	node := name + "-control-plane"
	pidOf := func() string {
		out, _ := exec.Command("docker", "exec", node, "pgrep", "-f", "berth-node kube-scheduler").Output()
		return strings.TrimSpace(string(out))
	}
	before := pidOf()
	if before == "" {
		t.Fatal("kube-scheduler is not running in the node")
	}
	if out, err := exec.Command("docker", "exec", node, "kill", "-9", before).CombinedOutput(); err != nil {
		t.Fatalf("killing kube-scheduler: %v: %s", err, out)
	}
	eventually(t, "kube-scheduler restarted", 30*time.Second, func() (bool, error) {
		now := pidOf()
		return now != "" && now != before, nil
	})
	// ... and the restarted scheduler schedules again.
	scaleTo(t, client, "default", "hello", 2)

	// A container the user attached to the cluster's network (a local
	// registry, say) is disconnected by delete, not removed, and does not
	// keep the network alive.
	run, err := exec.Command("docker", "run", "-d", "--rm", "--network", "berth-"+name, helloRef).CombinedOutput()
	if err != nil {
		t.Fatalf("attaching a container to the cluster's network: %v: %s", err, run)
	}
	foreign := strings.TrimSpace(string(run))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", foreign).Run() })

	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
	if out, err := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", foreign).Output(); err != nil || strings.TrimSpace(string(out)) != "true" {
		t.Errorf("delete cluster touched a container that is not the cluster's: running=%q err=%v", out, err)
	}
	_ = ctx
}

func int32p(v int32) *int32 { return &v }

// deployHello runs the hello image as a Deployment behind a NodePort
// Service and returns the node port.
func deployHello(t *testing.T, client kubernetes.Interface, ns string, replicas int32) int32 {
	t.Helper()
	return deployHelloImage(t, client, ns, replicas, helloRef)
}

// deployHelloImage is deployHello with the hello image under another
// reference.
func deployHelloImage(t *testing.T, client kubernetes.Interface, ns string, replicas int32, image string) int32 {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "hello"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:            "hello",
					Image:           image,
					ImagePullPolicy: corev1.PullNever,
					Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
						PeriodSeconds: 1,
					},
				}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	created, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	waitAvailable(t, client, ns, "hello", replicas)
	return created.Spec.Ports[0].NodePort
}

func waitAvailable(t *testing.T, client kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	eventually(t, fmt.Sprintf("deployment %s has %d available replicas", name, replicas), 3*time.Minute, func() (bool, error) {
		d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.AvailableReplicas == replicas && d.Status.UpdatedReplicas == replicas, fmt.Errorf("available %d", d.Status.AvailableReplicas)
	})
}

func scaleTo(t *testing.T, client kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	scale, err := client.AppsV1().Deployments(ns).GetScale(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = replicas
	if _, err := client.AppsV1().Deployments(ns).UpdateScale(context.Background(), name, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, client, ns, name, replicas)
}

// lookupFromPod resolves name from inside a pod and returns what it printed.
func lookupFromPod(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "lookup-", Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:            "lookup",
				Image:           helloRef,
				ImagePullPolicy: corev1.PullNever,
				Args:            []string{"lookup", name},
			}},
		},
	}
	created, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	eventually(t, "lookup pod finished", 2*time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, fmt.Errorf("phase %s", phase)
	})
	logs, err := client.CoreV1().Pods("default").GetLogs(created.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("reading lookup logs: %v", err)
	}
	if phase != corev1.PodSucceeded {
		t.Fatalf("DNS lookup of %s from a pod failed: %s", name, logs)
	}
	return strings.TrimSpace(string(logs))
}
