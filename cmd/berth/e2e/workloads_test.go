//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// workloadCommands is issue 4's proof on a cluster with two workers:
// label, scale, expose, service --url, and drain against a
// PodDisruptionBudget, through the real binary.
func workloadCommands(t *testing.T, cluster string, client kubernetes.Interface) {
	ctx := context.Background()
	kctx := "--context=berth-" + cluster
	w2 := cluster + "-worker2"

	// label + nodeSelector.
	mustBerth(t, "label", "node", w2, "disk=ssd", kctx)
	if _, err := berth(t, "label", "node", w2, "disk=hdd", kctx); err == nil {
		t.Error("changing a label without --overwrite succeeded")
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "on-ssd", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"disk": "ssd"},
			Containers:   []corev1.Container{{Name: "c", Image: helloRef, ImagePullPolicy: corev1.PullNever}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "nodeSelector pod scheduled on the labelled node", time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "on-ssd", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Spec.NodeName == w2, fmt.Errorf("on %q", p.Spec.NodeName)
	})

	// A web deployment with 2 replicas, one per worker.
	labels := map[string]string{"app": "web"}
	two := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
					Containers: []corev1.Container{{
						Name: "web", Image: helloRef, ImagePullPolicy: corev1.PullNever,
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
					}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, client, "default", "web", 2)

	// scale up and down, waiting.
	mustBerth(t, "scale", "deployment", "web", "--replicas", "4", "--wait", "--timeout", "2m", kctx)
	if d, _ := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{}); d.Status.ReadyReplicas != 4 {
		t.Errorf("after scale --wait to 4: %d ready", d.Status.ReadyReplicas)
	}
	mustBerth(t, "scale", "deployment", "web", "--replicas", "2", "--wait", "--timeout", "2m", kctx)
	waitAvailable(t, client, "default", "web", 2)

	// expose + service --url, fetched from the host.
	mustBerth(t, "expose", "deployment", "web", "--port", "80", "--target-port", "8080", "--type", "NodePort", "--name", "web-np", kctx)
	url := strings.TrimSpace(mustBerth(t, "service", "web-np", "--url", "--one", kctx))
	if !strings.HasPrefix(url, "http://") {
		t.Fatalf("service --url printed %q", url)
	}
	if body := httpGet(t, url+"/", time.Minute); !strings.HasPrefix(body, "hello from web-") {
		t.Errorf("%s answered %q", url, body)
	}

	// A PDB that allows no disruption: drain must fail without evicting.
	minAvail := intstr.FromInt32(2)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web-pdb", Namespace: "default"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvail, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}
	if _, err := client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "PDB observed", 30*time.Second, func() (bool, error) {
		p, err := client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web-pdb", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == 2, err
	})
	target := nodeOfWebPod(t, client)
	before := podUIDs(t, client, target)
	out, err := berth(t, "drain", target, "--ignore-daemonsets", "--force", "--timeout", "15s", kctx)
	if err == nil {
		t.Fatal("drain succeeded although the PDB allows no disruption")
	}
	if !strings.Contains(out+err.Error(), "web-pdb") {
		t.Errorf("drain's failure does not name the blocking PDB: %v", err)
	}
	if n, _ := client.CoreV1().Nodes().Get(ctx, target, metav1.GetOptions{}); !n.Spec.Unschedulable {
		t.Error("a drain that timed out left the node uncordoned")
	}
	after := podUIDs(t, client, target)
	for uid, name := range before {
		if _, ok := after[uid]; !ok && strings.HasPrefix(name, "web-") {
			t.Errorf("pod %s was evicted although the PDB forbade it", name)
		}
	}
	mustBerth(t, "uncordon", target, kctx)

	// With a third replica the PDB allows one disruption at a time.
	mustBerth(t, "scale", "deployment", "web", "--replicas", "3", "--wait", "--timeout", "2m", kctx)
	eventually(t, "PDB allows a disruption", 30*time.Second, func() (bool, error) {
		p, err := client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web-pdb", metav1.GetOptions{})
		return err == nil && p.Status.DisruptionsAllowed >= 1, err
	})
	target = nodeOfWebPod(t, client)
	mustBerth(t, "drain", target, "--ignore-daemonsets", "--force", "--timeout", "2m", kctx)
	pods, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web", FieldSelector: "spec.nodeName=" + target})
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			t.Errorf("pod %s still on drained node %s", p.Name, target)
		}
	}
	if p, _ := client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web-pdb", metav1.GetOptions{}); p.Status.CurrentHealthy < 2 {
		t.Errorf("PDB violated: %d healthy", p.Status.CurrentHealthy)
	}
	mustBerth(t, "uncordon", target, kctx)
	if n, _ := client.CoreV1().Nodes().Get(ctx, target, metav1.GetOptions{}); n.Spec.Unschedulable {
		t.Error("uncordon left the node unschedulable")
	}

}

func nodeOfWebPod(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	pods, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("no web pods: %v", err)
	}
	return pods.Items[0].Spec.NodeName
}

func podUIDs(t *testing.T, client kubernetes.Interface, node string) map[string]string {
	t.Helper()
	pods, err := client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		// Pods already terminating (left over from a scale-down) go away
		// by themselves; they say nothing about what drain evicted.
		if p.DeletionTimestamp != nil {
			continue
		}
		out[string(p.UID)] = p.Name
	}
	return out
}
