package snapshot

import (
	"bytes"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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
	// As the snapshot had it: running, ready, at an address of the old node.
	ready := metav1.NewTime(time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC))
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort,
		PodIP: "10.244.1.3", PodIPs: []corev1.PodIP{{IP: "10.244.1.3"}}, HostIP: "172.30.5.3", HostIPs: []corev1.HostIP{{IP: "172.30.5.3"}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: ready},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: ready},
		},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, RestartCount: 2}},
	}
	done := pod.DeepCopy()
	done.Name, done.UID, done.Spec.Affinity = "done", "u2", nil
	done.Status.Phase = corev1.PodSucceeded
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
		{Key: []byte("/registry/endpointslices/default/hello-abcde"), Value: []byte("old slice")},
		{Key: []byte("/registry/endpointslices/default/kubernetes"), Value: []byte("old api slice")},
		{Key: []byte("/registry/minions/golden-worker"), Value: encode(t, node)},
		{Key: []byte("/registry/persistentvolumes/pvc-1"), Value: encode(t, pv)},
		{Key: []byte("/registry/pods/default/done"), Value: encode(t, done)},
		{Key: []byte("/registry/pods/default/hello"), Value: podValue},
		{Key: []byte("/registry/pods/default/pending"), Value: pendingValue},
		{Key: []byte("/registry/services/endpoints/default/hello"), Value: []byte("old endpoints")},
	}
	have := []*mvccpb.KeyValue{
		{Key: []byte("/registry/minions/copy-worker"), Value: []byte("new node")},
		{Key: []byte("/registry/leases/kube-system/kube-scheduler"), Value: []byte("new lease")},
		{Key: []byte("/registry/metallb.io/ipaddresspools/metallb-system/berth"), Value: []byte("new pool")},
		{Key: []byte("/registry/pods/kube-system/coredns-new"), Value: []byte("new pod")},
		{Key: []byte("/registry/endpointslices/default/kubernetes"), Value: []byte("new api slice")},
		{Key: []byte("/registry/services/endpoints/default/kubernetes"), Value: []byte("new api endpoints")},
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
	for _, k := range []string{"/registry/csinodes/golden-worker", "/registry/leases/kube-node-lease/golden-worker", "/registry/minions/golden-worker", "/registry/pods/kube-system/coredns-new",
		"/registry/endpointslices/default/hello-abcde", "/registry/services/endpoints/default/hello"} {
		if _, ok := byKey[k]; ok {
			t.Errorf("%s is restored; want it left out", k)
		}
	}
	if string(byKey["/registry/minions/copy-worker"]) != "new node" || string(byKey["/registry/leases/kube-system/kube-scheduler"]) != "new lease" ||
		string(byKey["/registry/metallb.io/ipaddresspools/metallb-system/berth"]) != "new pool" {
		t.Errorf("the running cluster's node-owned keys are not kept: %q", byKey)
	}
	if string(byKey["/registry/endpointslices/default/kubernetes"]) != "new api slice" || string(byKey["/registry/services/endpoints/default/kubernetes"]) != "new api endpoints" {
		t.Errorf("the running cluster's Service addresses are not kept: %q", byKey)
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
	// The pod starts afresh on its new node: none of the old node's
	// addresses, readiness or container states.
	if st := gotPod.Status; st.Phase != corev1.PodPending || st.PodIP != "" || len(st.PodIPs) != 0 || st.HostIP != "" || len(st.HostIPs) != 0 ||
		len(st.ContainerStatuses) != 0 || st.QOSClass != corev1.PodQOSBestEffort || len(st.Conditions) != 1 || st.Conditions[0].Type != corev1.PodScheduled {
		t.Errorf("mapped pod's status: %+v", st)
	}
	// A finished pod keeps its status: its node would run it again.
	obj, _, err = codec.Decode(byKey["/registry/pods/default/done"], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gotDone := obj.(*corev1.Pod); gotDone.Spec.NodeName != "copy-worker" || gotDone.Status.Phase != corev1.PodSucceeded || gotDone.Status.PodIP != "10.244.1.3" {
		t.Errorf("mapped finished pod: node %s, status %+v", gotDone.Spec.NodeName, gotDone.Status)
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
	if !bytes.Equal(want[9].Value, podValue) {
		t.Errorf("Map changed its input")
	}

}

// A restore into the same cluster: pods it still runs (same UID) keep
// the snapshot's value, pods it lost start afresh, finished ones keep
// their status; the Service addresses are the running cluster's; the
// nodes' own keys are the snapshot's as before.
func TestMapSameCluster(t *testing.T) {
	running := func(name string, uid types.UID, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: uid},
			Spec:       corev1.PodSpec{NodeName: "a-worker", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			Status:     corev1.PodStatus{Phase: phase, PodIP: "10.244.1.7", PodIPs: []corev1.PodIP{{IP: "10.244.1.7"}}},
		}
	}
	keptValue := encode(t, running("kept", "u1", corev1.PodRunning))
	want := []*mvccpb.KeyValue{
		{Key: []byte("/registry/endpointslices/default/hello-abcde"), Value: []byte("old slice")},
		{Key: []byte("/registry/minions/a-worker"), Value: []byte("old node")},
		{Key: []byte("/registry/pods/default/done"), Value: encode(t, running("done", "u4", corev1.PodSucceeded))},
		{Key: []byte("/registry/pods/default/kept"), Value: keptValue},
		{Key: []byte("/registry/pods/default/lost"), Value: encode(t, running("lost", "u2", corev1.PodRunning))},
		{Key: []byte("/registry/pods/default/replaced"), Value: encode(t, running("replaced", "u3", corev1.PodRunning))},
	}
	have := []*mvccpb.KeyValue{
		{Key: []byte("/registry/endpointslices/default/hello-fghij"), Value: []byte("new slice")},
		{Key: []byte("/registry/minions/a-worker"), Value: []byte("new node")},
		{Key: []byte("/registry/pods/default/kept"), Value: keptValue},
		{Key: []byte("/registry/pods/default/replaced"), Value: encode(t, running("replaced", "u9", corev1.PodRunning))},
	}
	got, err := Map(want, have, nil)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string][]byte{}
	for _, kv := range got {
		byKey[string(kv.Key)] = kv.Value
	}
	if _, ok := byKey["/registry/endpointslices/default/hello-abcde"]; ok || string(byKey["/registry/endpointslices/default/hello-fghij"]) != "new slice" {
		t.Errorf("slices: %q", byKey)
	}
	if string(byKey["/registry/minions/a-worker"]) != "old node" {
		t.Errorf("a restore into the same cluster changed the node-owned keys: %q", byKey["/registry/minions/a-worker"])
	}
	if !bytes.Equal(byKey["/registry/pods/default/kept"], keptValue) {
		t.Errorf("a pod the cluster still runs was changed")
	}
	status := func(key string) corev1.PodStatus {
		obj, _, err := codec.Decode(byKey[key], nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*corev1.Pod).Status
	}
	for _, key := range []string{"/registry/pods/default/lost", "/registry/pods/default/replaced"} {
		if st := status(key); st.Phase != corev1.PodPending || st.PodIP != "" || len(st.PodIPs) != 0 {
			t.Errorf("%s: status %+v, want a freshly bound pod's", key, st)
		}
	}
	if st := status("/registry/pods/default/done"); st.Phase != corev1.PodSucceeded || st.PodIP != "10.244.1.7" {
		t.Errorf("finished pod: status %+v", st)
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
