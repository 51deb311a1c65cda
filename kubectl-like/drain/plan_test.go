package drain

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
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

func phase(ph corev1.PodPhase) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func onNode(n string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.NodeName = n } }

func dsLookup(namespace, name string) (bool, error) { return name == "agent", nil }

func TestDecidePod(t *testing.T) {
	cases := []struct {
		name    string
		pod     *corev1.Pod
		policy  Policy
		action  Action
		reasons []Reason
	}{
		{"replicaset pod", testPod("a", byReplicaSet), Policy{}, Evict, nil},
		{"mirror pod always skipped", testPod("a", mirror), Policy{Force: true}, Skip, []Reason{ReasonMirrorPod}},
		{"daemonset pod refused", testPod("a", byDaemonSet), Policy{}, Refuse, []Reason{ReasonDaemonSet}},
		{"daemonset pod refused even with --force", testPod("a", byDaemonSet), Policy{Force: true}, Refuse, []Reason{ReasonDaemonSet}},
		{"daemonset pod ignored", testPod("a", byDaemonSet, withEmptyDir), Policy{IgnoreDaemonSets: true}, Skip, []Reason{ReasonDaemonSet}},
		{"orphaned daemonset pod refused", testPod("a", byGoneDS), Policy{IgnoreDaemonSets: true}, Refuse, []Reason{ReasonOrphanedDaemonSet}},
		{"orphaned daemonset pod forced", testPod("a", byGoneDS), Policy{Force: true}, Evict, []Reason{ReasonOrphanedDaemonSet}},
		{"unmanaged refused", testPod("a"), Policy{}, Refuse, []Reason{ReasonUnmanaged}},
		{"unmanaged forced", testPod("a"), Policy{Force: true}, Evict, []Reason{ReasonUnmanaged}},
		{"emptyDir refused", testPod("a", byReplicaSet, withEmptyDir), Policy{}, Refuse, []Reason{ReasonLocalStorage}},
		{"emptyDir allowed", testPod("a", byReplicaSet, withEmptyDir), Policy{DeleteEmptyDirData: true}, Evict, []Reason{ReasonLocalStorage}},
		{"unmanaged with emptyDir lists both", testPod("a", withEmptyDir), Policy{}, Refuse, []Reason{ReasonLocalStorage, ReasonUnmanaged}},
		{"unmanaged with emptyDir, only --force", testPod("a", withEmptyDir), Policy{Force: true}, Refuse, []Reason{ReasonLocalStorage}},
		{"unmanaged with emptyDir, both flags", testPod("a", withEmptyDir), Policy{Force: true, DeleteEmptyDirData: true}, Evict, []Reason{ReasonLocalStorage, ReasonUnmanaged}},
		{"finished unmanaged pod", testPod("a", withEmptyDir, phase(corev1.PodSucceeded)), Policy{}, Evict, []Reason{ReasonFinished}},
		{"failed daemonset pod", testPod("a", byDaemonSet, phase(corev1.PodFailed)), Policy{}, Evict, []Reason{ReasonFinished}},
		{"non-apps DaemonSet kind is just a controller", testPod("a", ownedBy("example.com/v1", "DaemonSet", "x")), Policy{}, Evict, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := DecidePod(*c.pod, c.policy, dsLookup)
			if err != nil {
				t.Fatalf("DecidePod: %v", err)
			}
			if d.Action != c.action || !reflect.DeepEqual(d.Reasons, c.reasons) {
				t.Errorf("got %s %v, want %s %v", d.Action, d.Reasons, c.action, c.reasons)
			}
		})
	}
}

func TestDecidePodLookupError(t *testing.T) {
	_, err := DecidePod(*testPod("a", byDaemonSet), Policy{}, func(string, string) (bool, error) {
		return false, errors.New("boom")
	})
	if err == nil || !strings.Contains(err.Error(), "looking up DaemonSet default/agent of pod a: boom") {
		t.Errorf("error = %v", err)
	}
}

func TestBuildPlan(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default"}}
	client := fake.NewClientset(ds,
		testPod("web-1", byReplicaSet),
		testPod("web-2", byReplicaSet, onNode("node2")),
		testPod("agent-x", byDaemonSet),
		testPod("etcd-node1", mirror),
		testPod("bare"),
		testPod("cache", byReplicaSet, withEmptyDir),
	)
	plan, err := BuildPlan(context.Background(), client, "node1", "", Policy{IgnoreDaemonSets: true})
	if err != nil {
		t.Fatalf("BuildPlan: %v", err)
	}
	got := map[string]Action{}
	for _, d := range plan.Decisions {
		got[d.Pod.Name] = d.Action
	}
	want := map[string]Action{"web-1": Evict, "agent-x": Skip, "etcd-node1": Skip, "bare": Refuse, "cache": Refuse}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decisions = %v, want %v", got, want)
	}
	if names := podNames(plan.PodsToEvict()); !reflect.DeepEqual(names, []string{"web-1"}) {
		t.Errorf("PodsToEvict = %v", names)
	}

	err = plan.RefusalError()
	if err == nil {
		t.Fatal("RefusalError = nil with refused pods")
	}
	for _, want := range []string{
		`cannot drain node "node1": 2 pod(s) cannot be removed:`,
		"uses emptyDir local storage (use --delete-emptydir-data to override): default/cache",
		"not managed by a controller (use --force to override): default/bare",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("RefusalError = %q, missing %q", err, want)
		}
	}
	warnings := strings.Join(plan.Warnings(), "\n")
	if !strings.Contains(warnings, "leaving pods that are managed by a DaemonSet on the node: default/agent-x") ||
		!strings.Contains(warnings, "leaving pods that are mirrors of static pods on the node: default/etcd-node1") {
		t.Errorf("Warnings = %q", warnings)
	}

	// With the flags, everything but the DaemonSet and mirror pods goes.
	plan, err = BuildPlan(context.Background(), client, "node1", "", Policy{IgnoreDaemonSets: true, Force: true, DeleteEmptyDirData: true})
	if err != nil {
		t.Fatal(err)
	}
	if plan.RefusalError() != nil {
		t.Errorf("RefusalError with all flags: %v", plan.RefusalError())
	}
	if names := podNames(plan.PodsToEvict()); !reflect.DeepEqual(names, []string{"bare", "cache", "web-1"}) {
		t.Errorf("PodsToEvict = %v", names)
	}
	if w := strings.Join(plan.Warnings(), "\n"); !strings.Contains(w, "removing pods that are not managed by a controller: default/bare") {
		t.Errorf("Warnings = %q", w)
	}

	// --pod-selector narrows the pods considered.
	plan, err = BuildPlan(context.Background(), client, "node1", "app=web-1", Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Decisions) != 1 || plan.Decisions[0].Pod.Name != "web-1" {
		t.Errorf("with --pod-selector app=web-1: %d decisions", len(plan.Decisions))
	}
	if _, err := BuildPlan(context.Background(), client, "node1", "=bad", Policy{}); err == nil {
		t.Error("invalid --pod-selector accepted")
	}
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}
