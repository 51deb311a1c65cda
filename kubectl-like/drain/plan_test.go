package drain

import (
	"context"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// testPod builds a pod on node "node1"; opts adjust it.
func testPod(name string, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{NodeName: "node1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func ownedBy(apiVersion, kind, name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		yes := true
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &yes, UID: "owner"})
	}
}

var (
	byReplicaSet = ownedBy("apps/v1", "ReplicaSet", "web-abc")
	byDaemonSet  = ownedBy("apps/v1", "DaemonSet", "agent")
	byGoneDS     = ownedBy("apps/v1", "DaemonSet", "gone")
)

func withEmptyDir(p *corev1.Pod) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
}

func mirror(p *corev1.Pod) {
	p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
	ownedBy("v1", "Node", "node1")(p)
}

func onNode(n string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.NodeName = n } }

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// The filters are kubectl's; these tests check what berth builds on them:
// every flag a rerun needs is named at once, refusals and warnings come in
// a stable order, and a refusal kubectl names no flag for gets one.
func TestBuildPlan(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default"}}
	client := newClient(ds,
		testPod("web-1", byReplicaSet),
		testPod("web-2", byReplicaSet, onNode("node2")),
		testPod("agent-x", byDaemonSet),
		testPod("orphan", byGoneDS),
		testPod("etcd-node1", mirror),
		testPod("bare"),
		testPod("cache", byReplicaSet, withEmptyDir),
		// Refused for two reasons; kubectl reports only the first.
		testPod("scratch", withEmptyDir),
	)
	ctx := context.Background()
	plan, err := BuildPlan(ctx, client, "node1", "", Policy{})
	if err != nil {
		t.Fatalf("BuildPlan: %v", err)
	}
	var flags []string
	for _, r := range plan.Refusals {
		flags = append(flags, r.Flag)
	}
	if !reflect.DeepEqual(flags, []string{"--ignore-daemonsets", "--delete-emptydir-data", "--force"}) {
		t.Errorf("refusals by flag = %v", flags)
	}
	if len(plan.Unfixable) != 0 {
		t.Errorf("Unfixable = %q", plan.Unfixable)
	}
	msg := plan.RefusalError().Error()
	for _, want := range []string{
		`cannot drain node "node1", nothing was evicted:`,
		"(use --ignore-daemonsets to ignore): default/agent-x\n",
		"(use --delete-emptydir-data to override): default/cache, default/scratch\n",
		"(use --force to override): default/bare, default/scratch\n",
		`daemonsets.apps "gone" not found: default/orphan (use --force to override)`,
		"to go ahead, run the drain again with --ignore-daemonsets --delete-emptydir-data --force",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("RefusalError lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "etcd-node1") || strings.Contains(msg, "web-") {
		t.Errorf("RefusalError names pods that are not refused:\n%s", msg)
	}

	// Flags already given are not asked for again.
	plan, err = BuildPlan(ctx, client, "node1", "", Policy{IgnoreDaemonSets: true, DeleteEmptyDirData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Refusals) != 1 || plan.Refusals[0].Flag != "--force" {
		t.Errorf("with --ignore-daemonsets --delete-emptydir-data: refusals %+v", plan.Refusals)
	}

	// With every flag, everything but the DaemonSet and mirror pods goes.
	plan, err = BuildPlan(ctx, client, "node1", "", Policy{IgnoreDaemonSets: true, Force: true, DeleteEmptyDirData: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.RefusalError(); err != nil {
		t.Errorf("RefusalError with all flags: %v", err)
	}
	if names := podNames(plan.Pods); !reflect.DeepEqual(names, []string{"bare", "cache", "orphan", "scratch", "web-1"}) {
		t.Errorf("Pods = %v", names)
	}
	if !sortedStrings(plan.Warnings) || len(plan.Warnings) < 2 ||
		!strings.Contains(strings.Join(plan.Warnings, "\n"), "ignoring DaemonSet-managed Pods: default/agent-x") {
		t.Errorf("Warnings = %q, want kubectl's warnings one per line, sorted", plan.Warnings)
	}

	// --pod-selector narrows the pods considered.
	plan, err = BuildPlan(ctx, client, "node1", "app=web-1", Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if names := podNames(plan.Pods); !reflect.DeepEqual(names, []string{"web-1"}) || plan.RefusalError() != nil {
		t.Errorf("with --pod-selector app=web-1: pods %v, refusal %v", names, plan.RefusalError())
	}
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] > s[i] {
			return false
		}
	}
	return true
}
