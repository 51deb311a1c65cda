package scale_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/berth-dev/berth/kubectl-like/internal/fakeapi"
	"github.com/berth-dev/berth/kubectl-like/scale"
)

func int32p(n int32) *int32 { return &n }

func deployment(name string, replicas int32, rv string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: rv, Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, ReadyReplicas: replicas, UpdatedReplicas: replicas},
	}
}

func replicasOf(t *testing.T, c kubernetes.Interface, name string) int32 {
	t.Helper()
	d, err := c.AppsV1().Deployments("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting deployment %s: %v", name, err)
	}
	return *d.Spec.Replicas
}

func TestScale(t *testing.T) {
	s := fakeapi.New(t, deployment("web", 3, "7"))
	out, _, err := s.Run(t, scale.NewCmdScale, "deployment", "web", "--replicas=5")
	if err != nil {
		t.Fatalf("scale: %v", err)
	}
	if strings.TrimSpace(out) != "deployment.apps/web scaled" {
		t.Errorf("output = %q", out)
	}
	if got := replicasOf(t, s.Clientset, "web"); got != 5 {
		t.Errorf("replicas = %d, want 5", got)
	}
}

func TestScaleWait(t *testing.T) {
	d := deployment("web", 1, "1")
	s := fakeapi.New(t, d)

	// A "controller" that makes the new pods ready a little later.
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			cur, err := s.Clientset.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil || *cur.Spec.Replicas != 3 {
				return
			}
			cur.Status.Replicas, cur.Status.UpdatedReplicas = 3, 3
			if cur.Status.ReadyReplicas < 3 {
				cur.Status.ReadyReplicas++
			}
			_, _ = s.Clientset.AppsV1().Deployments("default").UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		}, 200*time.Millisecond)
	}()
	defer func() { cancel(); <-stopped }()

	out, errOut, err := s.Run(t, scale.NewCmdScale, "deployment", "web", "--replicas=3", "--wait", "--timeout=20s")
	if err != nil {
		t.Fatalf("scale --wait: %v\nstderr: %s", err, errOut)
	}
	if strings.TrimSpace(out) != "deployment.apps/web scaled" {
		t.Errorf("stdout = %q", out)
	}
	if !strings.Contains(errOut, "waiting for deployment.apps/web:") || !strings.Contains(errOut, "deployment.apps/web: 3/3 ready") {
		t.Errorf("stderr = %q, want progress and a final 3/3 ready line", errOut)
	}
}

func TestScaleWaitTimeout(t *testing.T) {
	s := fakeapi.New(t, deployment("web", 1, "1"))
	start := time.Now()
	_, _, err := s.Run(t, scale.NewCmdScale, "deployment", "web", "--replicas=2", "--wait", "--timeout=1500ms")
	if err == nil {
		t.Fatal("scale --wait succeeded although no replica became ready")
	}
	if !strings.Contains(err.Error(), "timed out after 1.5s waiting for deployment.apps/web to have 2 ready replicas (1/2 ready") {
		t.Errorf("error = %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v; the timeout was not honoured", el)
	}
	if got := replicasOf(t, s.Clientset, "web"); got != 2 {
		t.Errorf("replicas = %d, want the scale applied before waiting", got)
	}
}

func TestReadiness(t *testing.T) {
	ready := deployment("web", 3, "1")
	notObserved := deployment("web", 3, "1")
	notObserved.Generation = 2
	old := deployment("web", 3, "1")
	old.Status.UpdatedReplicas = 1
	partial := deployment("web", 3, "1")
	partial.Status.ReadyReplicas = 2
	scaledDown := deployment("web", 1, "1")
	scaledDown.Status.Replicas = 2 // one pod still counted

	cases := []struct {
		name    string
		obj     runtime.Object
		want    int32
		ready   bool
		summary string
		err     string
	}{
		{"deployment ready", ready, 3, true, "3/3 ready", ""},
		{"generation not observed", notObserved, 3, false, "3/3 ready, scale not yet observed by the controller", ""},
		{"old replicas", old, 3, false, "3/3 ready, 1 up to date", ""},
		{"partially ready", partial, 3, false, "2/3 ready", ""},
		{"scaling down", scaledDown, 1, false, "1/1 ready, 2 running", ""},
		{"rescaled meanwhile", ready, 5, false, "", "desired replicas changed to 3 while waiting for 5"},
		{"replicaset", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: int32p(2)}, Status: appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 2}}, 2, true, "2/2 ready", ""},
		{"statefulset", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: int32p(2)}, Status: appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 1}}, 2, false, "1/2 ready", ""},
		{"rc unset replicas defaults to 1", &corev1.ReplicationController{Status: corev1.ReplicationControllerStatus{Replicas: 1, ReadyReplicas: 1}}, 1, true, "1/1 ready", ""},
		{"zero", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: int32p(0)}}, 0, true, "0/0 ready", ""},
		{"unsupported kind", &corev1.Pod{}, 1, false, "", "not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, summary, err := scale.Readiness(c.obj, c.want)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if ok != c.ready || summary != c.summary {
				t.Errorf("Readiness = %v %q, want %v %q", ok, summary, c.ready, c.summary)
			}
		})
	}
}

func TestWaitForReadyWithFakeClientset(t *testing.T) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec:       appsv1.StatefulSetSpec{Replicas: int32p(2)},
		Status:     appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2},
	}
	client := fake.NewClientset(sts)
	target := scale.Target{GroupKind: schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, Namespace: "default", Name: "db"}
	if target.String() != "statefulset.apps/db" {
		t.Errorf("Target.String() = %q", target.String())
	}
	var progress bytes.Buffer
	if err := scale.WaitForReady(context.Background(), client, []scale.Target{target}, 2, 10*time.Millisecond, time.Second, &progress); err != nil {
		t.Fatalf("WaitForReady on a ready statefulset: %v", err)
	}
	if progress.String() != "statefulset.apps/db: 2/2 ready\n" {
		t.Errorf("progress = %q", progress.String())
	}

	err := scale.WaitForReady(context.Background(), client, []scale.Target{target}, 3, 10*time.Millisecond, 100*time.Millisecond, &progress)
	if err == nil || !strings.Contains(err.Error(), "desired replicas changed to 2 while waiting for 3") {
		t.Errorf("waiting for a size the object does not have: %v", err)
	}

	missing := scale.Target{GroupKind: target.GroupKind, Namespace: "default", Name: "nope"}
	if err := scale.WaitForReady(context.Background(), client, []scale.Target{missing}, 1, 10*time.Millisecond, time.Second, &progress); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing object: %v", err)
	}
}
