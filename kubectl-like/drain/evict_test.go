package drain

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/berth-dev/berth/kubectl-like/internal/fakeapi"
	"github.com/berth-dev/berth/kubectl-like/prompt"
)

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func pdb(name string, selector map[string]string, allowed int32) *policyv1.PodDisruptionBudget {
	min := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &min, Selector: &metav1.LabelSelector{MatchLabels: selector}},
		Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1},
	}
}

// newClient is a fake clientset that behaves like the API server where
// kubectl's drain helper depends on it.
func newClient(objs ...runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objs...)
	fakeapi.EvictionDeletesPods(cs)
	fakeapi.PodListsHonourFieldSelectors(cs)
	return cs
}

// refuseEvictions makes evictions of the named pods fail with 429, like the
// API server does when a PodDisruptionBudget would be violated; count
// records the attempts. limit > 0 stops refusing after limit attempts.
func refuseEvictions(cs *fake.Clientset, count *int32, limit int32, names ...string) {
	cs.PrependReactor("create", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := action.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction)
		for _, n := range names {
			if ev.Name == n {
				if n := atomic.AddInt32(count, 1); limit > 0 && n > limit {
					return false, nil, nil
				}
				return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			}
		}
		return false, nil, nil
	})
}

func deletedPods(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			out = append(out, a.(clienttesting.DeleteAction).GetName())
		}
	}
	return out
}

func evictions(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" && a.GetSubresource() == "eviction" {
			n++
		}
	}
	return n
}

func podExists(cs *fake.Clientset, name string) bool {
	_, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	return err == nil
}

func testOptions(cs *fake.Clientset, nodeName string) (*Options, *bytes.Buffer, *bytes.Buffer) {
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewOptions(streams, nil)
	o.Client, o.Node = cs, nodeName
	o.RetryInterval, o.StatusInterval = 20*time.Millisecond, 0
	return o, out, errOut
}

func cordoned(t *testing.T, cs *fake.Clientset, name string) bool {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Spec.Unschedulable
}

func TestMatchingPDBs(t *testing.T) {
	p := testPod("web-1")
	p.Labels = map[string]string{"app": "web", "tier": "front"}
	nilSel := pdb("nil-selector", nil, 0)
	nilSel.Spec.Selector = nil
	otherNS := pdb("other-ns", map[string]string{"app": "web"}, 0)
	otherNS.Namespace = "kube-system"
	all := []policyv1.PodDisruptionBudget{
		*pdb("web", map[string]string{"app": "web"}, 0),
		*pdb("db", map[string]string{"app": "db"}, 0),
		*pdb("everything", map[string]string{}, 1),
		*nilSel, *otherNS,
	}
	got := MatchingPDBs(p, all)
	var names []string
	for _, b := range got {
		names = append(names, b.Name)
	}
	if strings.Join(names, ",") != "everything,web" {
		t.Errorf("MatchingPDBs = %v, want [everything web]", names)
	}
	if d := DescribePDB(&all[0]); d != "PodDisruptionBudget default/web (0 disruptions allowed, 1/1 healthy, 1 required)" {
		t.Errorf("DescribePDB = %q", d)
	}
}

func TestDrainEvictsPods(t *testing.T) {
	cs := newClient(node("node1"), node("node2"),
		testPod("web-1", byReplicaSet), testPod("web-2", byReplicaSet), testPod("other", byReplicaSet, onNode("node2")))
	o, out, _ := testOptions(cs, "node1")
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if !cordoned(t, cs, "node1") || cordoned(t, cs, "node2") {
		t.Error("drain should cordon node1 and only node1")
	}
	if podExists(cs, "web-1") || podExists(cs, "web-2") || !podExists(cs, "other") {
		t.Error("drain should remove exactly the pods of node1")
	}
	if len(deletedPods(cs)) != 0 {
		t.Errorf("pods deleted directly (%v) instead of evicted", deletedPods(cs))
	}
	for _, want := range []string{"node/node1 cordoned", "evicting pod default/web-1", "pod default/web-1 evicted", "pod default/web-2 evicted", "node/node1 drained"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDrainBlockedByPDBTimesOut(t *testing.T) {
	cs := newClient(node("node1"),
		testPod("web-1", byReplicaSet), testPod("db-0", byReplicaSet),
		pdb("web-pdb", map[string]string{"app": "web-1"}, 0), pdb("unrelated", map[string]string{"app": "x"}, 0))
	var attempts int32
	refuseEvictions(cs, &attempts, 0, "web-1")
	o, out, errOut := testOptions(cs, "node1")
	o.Timeout = 400 * time.Millisecond

	err := o.Run(context.Background())
	var inc *IncompleteError
	if !errors.As(err, &inc) {
		t.Fatalf("drain error = %v (%T), want *IncompleteError", err, err)
	}
	if len(inc.Remaining) != 1 || inc.Remaining[0].Name != "web-1" || inc.Remaining[0].State != StateBlocked ||
		strings.Join(inc.Remaining[0].BlockedBy, ",") != "default/web-pdb" {
		t.Errorf("Remaining = %+v, want web-1 blocked by default/web-pdb", inc.Remaining)
	}
	msg := err.Error()
	for _, want := range []string{`drain of node "node1" timed out after 400ms; the node stays cordoned`,
		"1 pod(s) still on the node:", "default/web-1: eviction refused, blocked by PodDisruptionBudget default/web-pdb"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "unrelated") {
		t.Errorf("error names a PDB that does not cover the pod:\n%s", msg)
	}
	if !strings.Contains(errOut.String(), "pod default/web-1: eviction refused, blocked by PodDisruptionBudget default/web-pdb (0 disruptions allowed") {
		t.Errorf("stderr does not say which PDB blocks the pod:\n%s", errOut)
	}
	if strings.Count(errOut.String(), "eviction refused") != 1 {
		t.Errorf("the same block should be reported once, got:\n%s", errOut)
	}
	if strings.Count(out.String(), "evicting pod default/web-1") != 1 {
		t.Errorf("each pod should be announced once, got:\n%s", out)
	}
	if atomic.LoadInt32(&attempts) < 3 {
		t.Errorf("refused eviction retried %d times, want several", attempts)
	}
	if d := deletedPods(cs); len(d) != 0 {
		t.Errorf("pods deleted despite the PDB: %v", d)
	}
	if !podExists(cs, "web-1") {
		t.Error("blocked pod vanished")
	}
	if podExists(cs, "db-0") || !strings.Contains(out.String(), "pod default/db-0 evicted") {
		t.Error("the unblocked pod should still be evicted")
	}
	if !cordoned(t, cs, "node1") {
		t.Error("node must stay cordoned after a timeout")
	}
}

func TestDrainRetriesUntilPDBAllows(t *testing.T) {
	cs := newClient(node("node1"), testPod("web-1", byReplicaSet), pdb("web-pdb", map[string]string{"app": "web-1"}, 0))
	var attempts int32
	refuseEvictions(cs, &attempts, 3, "web-1")
	o, out, _ := testOptions(cs, "node1")
	o.Timeout = 10 * time.Second
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if attempts != 4 {
		t.Errorf("eviction attempts = %d, want 3 refused + 1 accepted", attempts)
	}
	if podExists(cs, "web-1") || !strings.Contains(out.String(), "node/node1 drained") {
		t.Errorf("pod not evicted after the PDB allowed it:\n%s", out)
	}
}

func TestDrainRefusesBeforeEvicting(t *testing.T) {
	cs := newClient(node("node1"), testPod("web-1", byReplicaSet), testPod("bare"), testPod("cache", byReplicaSet, withEmptyDir))
	o, _, _ := testOptions(cs, "node1")
	err := o.Run(context.Background())
	if err == nil {
		t.Fatal("drain with an unmanaged and an emptyDir pod succeeded without flags")
	}
	for _, want := range []string{"default/bare", "--force", "default/cache", "--delete-emptydir-data", `node "node1" stays cordoned`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if evictions(cs) != 0 || !podExists(cs, "web-1") {
		t.Error("pods evicted although the drain was refused")
	}
	if !cordoned(t, cs, "node1") {
		t.Error("node should be cordoned (cordon happens first)")
	}

	o, _, _ = testOptions(cs, "node1")
	o.Force, o.DeleteEmptyDirData = true, true
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("drain --force --delete-emptydir-data: %v", err)
	}
	for _, n := range []string{"web-1", "bare", "cache"} {
		if podExists(cs, n) {
			t.Errorf("pod %s still exists", n)
		}
	}
}

func TestDrainDaemonSets(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default"}}
	cs := newClient(node("node1"), testPod("agent-1", byDaemonSet), testPod("etcd", mirror), testPod("web-1", byReplicaSet), ds)
	o, _, _ := testOptions(cs, "node1")
	if err := o.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "--ignore-daemonsets") {
		t.Fatalf("drain with a DaemonSet pod and no --ignore-daemonsets: %v", err)
	}
	o, _, errOut := testOptions(cs, "node1")
	o.IgnoreDaemonSets = true
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("drain --ignore-daemonsets: %v", err)
	}
	if !podExists(cs, "agent-1") || !podExists(cs, "etcd") || podExists(cs, "web-1") {
		t.Error("DaemonSet and mirror pods must stay, others go")
	}
	if !strings.Contains(errOut.String(), "Warning: ignoring DaemonSet-managed Pods: default/agent-1") {
		t.Errorf("stderr = %q", errOut)
	}
}

func TestDrainDryRunClient(t *testing.T) {
	cs := newClient(node("node1"), testPod("web-1", byReplicaSet))
	o, out, _ := testOptions(cs, "node1")
	o.DryRun = cmdutil.DryRunClient
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cordoned(t, cs, "node1") || !podExists(cs, "web-1") || evictions(cs) != 0 {
		t.Error("client dry run changed the cluster")
	}
	want := "node/node1 cordoned (dry run)\nevicting pod default/web-1 (dry run)\nnode/node1 drained (dry run)\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", out, want)
	}
}

func TestDrainDisableEviction(t *testing.T) {
	cs := newClient(node("node1"), testPod("web-1", byReplicaSet), pdb("web-pdb", map[string]string{"app": "web-1"}, 0))
	var attempts int32
	refuseEvictions(cs, &attempts, 0, "web-1")
	o, out, _ := testOptions(cs, "node1")
	o.DisableEviction, o.GracePeriodSeconds = true, 5
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("drain --disable-eviction: %v", err)
	}
	if evictions(cs) != 0 || podExists(cs, "web-1") {
		t.Error("--disable-eviction must delete without evicting")
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			opts := a.(clienttesting.DeleteActionImpl).DeleteOptions
			if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 5 {
				t.Errorf("delete grace period = %v, want 5", opts.GracePeriodSeconds)
			}
		}
	}
	if !strings.Contains(out.String(), "deleting pod default/web-1") || !strings.Contains(out.String(), "pod default/web-1 deleted") {
		t.Errorf("output = %q", out)
	}
}

func TestDrainValidate(t *testing.T) {
	o, _, _ := testOptions(newClient(), "node1")
	o.PodSelector = "=bad"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--pod-selector") {
		t.Errorf("invalid --pod-selector: %v", err)
	}
	o, _, _ = testOptions(newClient(), "nope")
	if err := o.Run(context.Background()); err == nil || !strings.Contains(err.Error(), `getting node "nope"`) {
		t.Errorf("missing node: %v", err)
	}
}

func TestEvictorReportsStatus(t *testing.T) {
	cs := newClient(testPod("web-1", byReplicaSet), pdb("web-pdb", map[string]string{"app": "web-1"}, 0))
	var attempts int32
	refuseEvictions(cs, &attempts, 0, "web-1")
	var out, errOut bytes.Buffer
	ev := &Evictor{Client: cs, GracePeriodSeconds: -1, RetryInterval: 10 * time.Millisecond,
		StatusInterval: 50 * time.Millisecond, Out: &out, ErrOut: &errOut}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p, _ := cs.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
	err := ev.Run(ctx, "node1", []corev1.Pod{*p})
	var inc *IncompleteError
	if !errors.As(err, &inc) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v", err)
	}
	if !strings.Contains(errOut.String(), "still waiting for 1 pod(s) to leave node \"node1\":\n  default/web-1: eviction refused, blocked by PodDisruptionBudget default/web-pdb") {
		t.Errorf("no periodic status on stderr:\n%s", errOut.String())
	}
}

// fakePrompter answers like a person at a terminal would.
type fakePrompter struct {
	answer   bool
	asked    string
	details  []string
	choices  []string
	canAsk   bool
	chosenAt int
}

func (f *fakePrompter) Choose(_ context.Context, c prompt.Choice) (string, error) {
	f.choices = c.Candidates
	return c.Candidates[f.chosenAt], nil
}
func (f *fakePrompter) CanAsk() bool { return f.canAsk }
func (f *fakePrompter) Confirm(_ context.Context, q string, details []string) (bool, error) {
	f.asked, f.details = q, details
	return f.answer, nil
}

func TestDrainConfirm(t *testing.T) {
	cs := newClient(node("node1"), node("node2"), testPod("web-1", byReplicaSet), pdb("web-pdb", map[string]string{"app": "web-1"}, 0))
	ctx := context.Background()

	// Nobody to ask: a node that was only picked is not drained.
	o, _, _ := testOptions(cs, "")
	o.Prompt = &fakePrompter{chosenAt: 0}
	if err := o.Complete(nil, newDrainCmd(ctx), nil); err != nil {
		t.Fatal(err)
	}
	if o.Node != "node1" {
		t.Errorf("picked %q", o.Node)
	}
	if ok, err := o.Confirm(ctx); ok || err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("unattended drain of a picked node: %v %v", ok, err)
	}
	o.Yes = true
	if ok, err := o.Confirm(ctx); !ok || err != nil {
		t.Errorf("--yes: %v %v", ok, err)
	}

	// A person is asked, with what the drain will do, and declines.
	p := &fakePrompter{canAsk: true}
	o, _, errOut := testOptions(cs, "node1")
	o.Prompt = p
	if ok, err := o.Confirm(ctx); ok || err != nil {
		t.Errorf("declined: %v %v", ok, err)
	}
	details := strings.Join(p.details, "\n")
	for _, want := range []string{"node node1 will be cordoned", "1 pod(s) will be evicted:\n  default/web-1",
		"blocked until it allows a disruption: PodDisruptionBudget default/web-pdb"} {
		if !strings.Contains(details, want) {
			t.Errorf("confirmation details lack %q:\n%s", want, details)
		}
	}
	if p.asked != "Drain node node1?" || !strings.Contains(errOut.String(), "Node node1 left as it was.") {
		t.Errorf("asked %q, stderr %q", p.asked, errOut)
	}
	if cordoned(t, cs, "node1") {
		t.Error("asking changed the node")
	}
}

// newDrainCmd is a drain command carrying ctx, for Complete.
func newDrainCmd(ctx context.Context) *cobra.Command {
	cmd := NewCmdDrain(nil, genericiooptions.NewTestIOStreamsDiscard(), nil)
	cmd.SetContext(ctx)
	return cmd
}

// Through the API server (kubectl's REST clients, discovery): the drain
// evicts, and cordon without NODE uses the only node.
func TestDrainAndCordonThroughAPI(t *testing.T) {
	s := fakeapi.New(t, node("node1"), testPod("web-1", byReplicaSet), testPod("web-2", byReplicaSet))
	drain := func(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
		return NewCmdDrain(f, streams, nil)
	}
	out, _, err := s.Run(t, drain, "node1", "--timeout=20s", "--grace-period=0")
	if err != nil {
		t.Fatalf("berth drain: %v", err)
	}
	if !strings.Contains(out, "node/node1 cordoned") || !strings.Contains(out, "node/node1 drained") {
		t.Errorf("output = %q", out)
	}
	if podExists(s.Clientset, "web-1") || podExists(s.Clientset, "web-2") || !cordoned(t, s.Clientset, "node1") {
		t.Error("drain through the API did not cordon and empty the node")
	}
	if _, _, err := s.Run(t, drain, "node1", "--dry-run=bogus"); err == nil {
		t.Error("invalid --dry-run accepted")
	}

	uncordon := func(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
		return NewCmdUncordon(f, streams, nil)
	}
	out, errOut, err := s.Run(t, uncordon)
	if err != nil || strings.TrimSpace(out) != "node/node1 uncordoned" || cordoned(t, s.Clientset, "node1") {
		t.Errorf("uncordon without NODE: out=%q err=%v", out, err)
	}
	if !strings.Contains(errOut, "Using node node1") {
		t.Errorf("stderr = %q, want the picked node named", errOut)
	}
}

func TestDrainDryRunServer(t *testing.T) {
	s := fakeapi.New(t, node("node1"), testPod("web-1", byReplicaSet), testPod("db-0", byReplicaSet),
		pdb("db-pdb", map[string]string{"app": "db-0"}, 0))
	var attempts int32
	refuseEvictions(s.Clientset, &attempts, 0, "db-0")
	drain := func(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
		return NewCmdDrain(f, streams, nil)
	}
	out, _, err := s.Run(t, drain, "node1", "--dry-run=server")
	if err == nil || !strings.Contains(err.Error(), "pod default/db-0: eviction refused, blocked by PodDisruptionBudget default/db-pdb") {
		t.Errorf("server dry run against a PDB: %v", err)
	}
	if !strings.Contains(out, "node/node1 cordoned (server dry run)") || !strings.Contains(out, "pod default/web-1 evicted (server dry run)") {
		t.Errorf("output = %q", out)
	}
	if cordoned(t, s.Clientset, "node1") || !podExists(s.Clientset, "web-1") || attempts != 1 {
		t.Errorf("server dry run changed the cluster or retried (%d attempts)", attempts)
	}
}
