package snapshot

import (
	"bytes"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func encode(t *testing.T, obj runtime.Object) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := codec.Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("k8s\x00")) {
		t.Fatalf("encoded value lacks the k8s protobuf prefix: %q", buf.Bytes()[:8])
	}
	return buf.Bytes()
}

func TestMap(t *testing.T) {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "hello"}},
		Spec: corev1.PodSpec{NodeName: "golden-worker", Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			// A DaemonSet's pod.
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"golden-worker"}}},
			}}}}},
		},
	}
	unscheduled := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "default"},
	}
	pv := &corev1.PersistentVolume{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolume"},
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-1", Annotations: map[string]string{selectedNodeAnnotation: "golden-worker2"}},
		Spec: corev1.PersistentVolumeSpec{
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{"golden-worker2", "elsewhere"}}},
			}}}},
		},
	}
	node := &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: metav1.ObjectMeta{Name: "golden-worker"}}
	podValue, pendingValue := encode(t, pod), encode(t, unscheduled)
	want := []*mvccpb.KeyValue{
		{Key: []byte("/registry/configmaps/default/x"), Value: []byte("k8s\x00opaque")},
		{Key: []byte("/registry/csinodes/golden-worker"), Value: []byte("old csinode")},
		{Key: []byte("/registry/leases/kube-node-lease/golden-worker"), Value: []byte("old lease")},
		{Key: []byte("/registry/metallb.io/ipaddresspools/metallb-system/berth"), Value: []byte("old pool")},
		{Key: []byte("/registry/minions/golden-worker"), Value: encode(t, node)},
		{Key: []byte("/registry/persistentvolumes/pvc-1"), Value: encode(t, pv)},
		{Key: []byte("/registry/pods/default/hello"), Value: podValue},
		{Key: []byte("/registry/pods/default/pending"), Value: pendingValue},
	}
	have := []*mvccpb.KeyValue{
		{Key: []byte("/registry/minions/copy-worker"), Value: []byte("new node")},
		{Key: []byte("/registry/leases/kube-system/kube-scheduler"), Value: []byte("new lease")},
		{Key: []byte("/registry/metallb.io/ipaddresspools/metallb-system/berth"), Value: []byte("new pool")},
		{Key: []byte("/registry/pods/kube-system/coredns-new"), Value: []byte("new pod")},
	}
	m := NodeMap{"golden-worker": "copy-worker", "golden-worker2": "copy-worker2"}
	got, err := Map(want, have, m)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string][]byte{}
	for _, kv := range got {
		byKey[string(kv.Key)] = kv.Value
	}
	for _, k := range []string{"/registry/csinodes/golden-worker", "/registry/leases/kube-node-lease/golden-worker", "/registry/minions/golden-worker", "/registry/pods/kube-system/coredns-new"} {
		if _, ok := byKey[k]; ok {
			t.Errorf("%s is restored; want it left out", k)
		}
	}
	if string(byKey["/registry/minions/copy-worker"]) != "new node" || string(byKey["/registry/leases/kube-system/kube-scheduler"]) != "new lease" ||
		string(byKey["/registry/metallb.io/ipaddresspools/metallb-system/berth"]) != "new pool" {
		t.Errorf("the running cluster's node-owned keys are not kept: %q", byKey)
	}
	if string(byKey["/registry/configmaps/default/x"]) != "k8s\x00opaque" {
		t.Errorf("an object naming no node changed")
	}
	if !bytes.Equal(byKey["/registry/pods/default/pending"], pendingValue) {
		t.Errorf("an unscheduled pod was re-encoded")
	}

	obj, _, err := codec.Decode(byKey["/registry/pods/default/hello"], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gotPod := obj.(*corev1.Pod)
	if v := gotPod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields[0].Values; len(v) != 1 || v[0] != "copy-worker" {
		t.Errorf("mapped pod's node affinity: %v", v)
	}
	if gotPod.Spec.NodeName != "copy-worker" || gotPod.UID != "u1" || gotPod.Labels["app"] != "hello" || gotPod.Spec.Containers[0].Image != "busybox" {
		t.Errorf("mapped pod: %+v", gotPod)
	}
	obj, _, err = codec.Decode(byKey["/registry/persistentvolumes/pvc-1"], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gotPV := obj.(*corev1.PersistentVolume)
	values := gotPV.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values
	if len(values) != 2 || values[0] != "copy-worker2" || values[1] != "elsewhere" || gotPV.Annotations[selectedNodeAnnotation] != "copy-worker2" {
		t.Errorf("mapped PV: affinity %v, annotations %v", values, gotPV.Annotations)
	}
	// The original is untouched (it may be the rollback's too).
	if !bytes.Equal(want[6].Value, podValue) {
		t.Errorf("Map changed its input")
	}

	// Without a mapping nothing changes.
	same, err := Map(want, have, nil)
	if err != nil || len(same) != len(want) {
		t.Errorf("Map without a mapping: %d keys, %v", len(same), err)
	}
}

func TestParseNodeMap(t *testing.T) {
	m, err := ParseNodeMap([]string{"a=b", "c=d"})
	if err != nil || m["a"] != "b" || m["c"] != "d" {
		t.Errorf("ParseNodeMap: %v, %v", m, err)
	}
	for _, bad := range []string{"a", "=b", "a="} {
		if _, err := ParseNodeMap([]string{bad}); err == nil {
			t.Errorf("ParseNodeMap(%q) accepted", bad)
		}
	}
}
