package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	policyv1client "k8s.io/client-go/kubernetes/typed/policy/v1"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	kdrain "k8s.io/kubectl/pkg/drain"
)

// PodState is where the removal of one pod stands.
type PodState string

const (
	// StatePending: no eviction has been accepted yet.
	StatePending PodState = "not evicted yet"
	// StateBlocked: the API server refused the eviction (HTTP 429),
	// normally because of a PodDisruptionBudget; it is retried.
	StateBlocked PodState = "eviction refused"
	// StateTerminating: eviction or deletion accepted, the pod is shutting down.
	StateTerminating PodState = "terminating"
	// StateGone: the pod no longer exists.
	StateGone PodState = "gone"
	// StateFailed: removal failed with an error that retrying cannot fix.
	StateFailed PodState = "failed"
)

// PodProgress tracks one pod of a drain.
type PodProgress struct {
	Namespace string
	Name      string
	UID       types.UID
	State     PodState
	// BlockedBy names the PodDisruptionBudgets ("namespace/name") that
	// cover the pod when its eviction was refused.
	BlockedBy []string
	// Detail is the last message from the API server, if any.
	Detail string
}

func (p PodProgress) String() string {
	s := fmt.Sprintf("%s/%s: %s", p.Namespace, p.Name, p.State)
	if len(p.BlockedBy) > 0 {
		s += ", blocked by PodDisruptionBudget " + strings.Join(p.BlockedBy, ", ")
	} else if p.State == StateBlocked && p.Detail != "" {
		s += ": " + p.Detail
	}
	if p.State == StateFailed && p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// IncompleteError is returned when a drain stops (timeout or interrupt)
// before all pods left the node. The node stays cordoned.
type IncompleteError struct {
	Node string
	// Cause is context.DeadlineExceeded for a timeout, or context.Canceled.
	Cause error
	// Timeout is the drain's --timeout, when that was what ended it.
	Timeout time.Duration
	// Remaining lists the pods still on the node.
	Remaining []PodProgress
}

func (e *IncompleteError) Error() string {
	var b strings.Builder
	why := "interrupted"
	if errors.Is(e.Cause, context.DeadlineExceeded) {
		why = "timed out"
		if e.Timeout > 0 {
			why += " after " + e.Timeout.String()
		}
	}
	fmt.Fprintf(&b, "drain of node %q %s; the node stays cordoned", e.Node, why)
	if len(e.Remaining) == 0 {
		b.WriteString(" (no pods to evict remain on it)")
		return b.String()
	}
	fmt.Fprintf(&b, "; %d pod(s) still on the node:", len(e.Remaining))
	for _, p := range e.Remaining {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

func (e *IncompleteError) Unwrap() error { return e.Cause }

// Evictor removes pods from a node with kubectl's drain helper: through
// the Eviction API, retrying refused evictions, or by plain deletion with
// DisableEviction; then it waits until the pods are gone. What it adds is
// the reporting: which PodDisruptionBudget refuses an eviction, which pods
// are still waited for, and which are left when the drain stops early.
type Evictor struct {
	Client kubernetes.Interface
	// GracePeriodSeconds overrides the pods' termination grace period;
	// negative keeps each pod's own.
	GracePeriodSeconds int
	// DisableEviction deletes pods directly, bypassing PodDisruptionBudgets.
	DisableEviction bool
	// ServerDryRun sends one request per pod as a server-side dry run and
	// does not wait for pods to go.
	ServerDryRun bool
	// RetryInterval is the pause before retrying a refused eviction.
	RetryInterval time.Duration
	// StatusInterval, when > 0, is how often to print the pods still
	// being waited for.
	StatusInterval time.Duration

	Out    io.Writer
	ErrOut io.Writer

	// mu guards pods and closed, and serialises the output: the helper
	// works on every pod in a goroutine of its own.
	mu   sync.Mutex
	pods map[string]*podRemoval
	// closed is set when Run has returned; the helper may still be
	// finishing a retry pause, and must not print after the result.
	closed bool
}

// podRemoval is the Evictor's record of one pod.
type podRemoval struct {
	PodProgress
	pod       corev1.Pod
	announced bool
	lastBlock string
}

func podKey(namespace, name string) string { return namespace + "/" + name }

// Run removes pods and waits until they are gone or ctx ends. When ctx ends
// first it returns an *IncompleteError listing the pods still on the node.
func (e *Evictor) Run(ctx context.Context, node string, pods []corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	e.mu.Lock()
	e.closed = false
	e.pods = map[string]*podRemoval{}
	for _, p := range pods {
		e.pods[podKey(p.Namespace, p.Name)] = &podRemoval{
			PodProgress: PodProgress{Namespace: p.Namespace, Name: p.Name, UID: p.UID, State: StatePending},
			pod:         p,
		}
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
	}()

	if e.ServerDryRun {
		return e.dryRun(ctx, pods)
	}
	helper := &kdrain.Helper{
		Ctx:                  ctx,
		Client:               &evictionObserver{Interface: e.Client, answered: e.evictionAnswered},
		GracePeriodSeconds:   e.GracePeriodSeconds,
		DisableEviction:      e.DisableEviction,
		EvictErrorRetryDelay: e.RetryInterval,
		// The helper prints "evicting pod" again on every retry and
		// does not say which budget refuses an eviction: the callbacks
		// and the observer print berth's lines instead.
		Out:                             io.Discard,
		ErrOut:                          io.Discard,
		OnPodDeletionOrEvictionStarted:  e.started,
		OnPodDeletionOrEvictionFinished: e.finished,
	}

	statusCtx, stopStatus := context.WithCancel(ctx)
	defer stopStatus()
	if e.StatusInterval > 0 {
		go e.reportStatus(statusCtx, node)
	}

	done := make(chan error, 1)
	go func() { done <- helper.DeleteOrEvictPods(pods) }()
	select {
	case err := <-done:
		if ctx.Err() == nil {
			return err
		}
	case <-ctx.Done():
		// The helper's pause between retries does not watch ctx: do
		// not wait for it. It sends nothing more once ctx has ended.
	}
	return &IncompleteError{Node: node, Cause: ctx.Err(), Remaining: e.remaining(ctx)}
}

// dryRun sends each removal once as a server-side dry run: the server
// checks it (PodDisruptionBudgets included) and changes nothing, so there
// is nothing to retry or wait for.
func (e *Evictor) dryRun(ctx context.Context, pods []corev1.Pod) error {
	helper := &kdrain.Helper{Ctx: ctx, Client: e.Client, GracePeriodSeconds: e.GracePeriodSeconds, DryRunStrategy: cmdutil.DryRunServer}
	var errs []error
	for _, pod := range pods {
		fmt.Fprintf(e.Out, "%s pod %s/%s (server dry run)\n", verb(!e.DisableEviction), pod.Namespace, pod.Name)
		var err error
		if e.DisableEviction {
			err = helper.DeletePod(pod)
		} else {
			err = helper.EvictPod(pod, policyv1.SchemeGroupVersion)
		}
		switch {
		case err == nil || apierrors.IsNotFound(err):
			fmt.Fprintf(e.Out, "pod %s/%s %s (server dry run)\n", pod.Namespace, pod.Name, pastVerb(!e.DisableEviction))
		case apierrors.IsTooManyRequests(err):
			_, desc := e.describeBlock(ctx, &pod)
			errs = append(errs, fmt.Errorf("pod %s/%s: eviction refused%s: %w", pod.Namespace, pod.Name, desc, err))
		default:
			errs = append(errs, fmt.Errorf("%s pod %s/%s: %w", verb(!e.DisableEviction), pod.Namespace, pod.Name, err))
		}
	}
	return errors.Join(errs...)
}

// started is the helper's callback when it starts removing pod: before
// each eviction attempt, or once the deletion was accepted.
func (e *Evictor) started(pod *corev1.Pod, usingEviction bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.pods[podKey(pod.Namespace, pod.Name)]
	if r == nil || e.closed || r.announced {
		return
	}
	r.announced = true
	if !usingEviction {
		r.State = StateTerminating
	}
	fmt.Fprintf(e.Out, "%s pod %s/%s\n", verb(usingEviction), pod.Namespace, pod.Name)
}

// finished is the helper's callback when pod is gone, or when checking
// that failed (err; the helper then returns it).
func (e *Evictor) finished(pod *corev1.Pod, usingEviction bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.pods[podKey(pod.Namespace, pod.Name)]
	if r == nil || e.closed {
		return
	}
	if err != nil {
		r.Detail = err.Error()
		return
	}
	r.State, r.BlockedBy, r.Detail = StateGone, nil, ""
	fmt.Fprintf(e.Out, "pod %s/%s %s\n", pod.Namespace, pod.Name, pastVerb(usingEviction))
}

// evictionAnswered learns how the API server answered one eviction
// request, which the helper only prints. A refusal (HTTP 429) is reported
// once per distinct reason, with the PodDisruptionBudgets covering the pod.
func (e *Evictor) evictionAnswered(ctx context.Context, ev *policyv1.Eviction, err error) {
	key := podKey(ev.Namespace, ev.Name)
	var names []string
	var desc string
	if apierrors.IsTooManyRequests(err) {
		e.mu.Lock()
		r := e.pods[key]
		e.mu.Unlock()
		if r != nil {
			names, desc = e.describeBlock(ctx, &r.pod)
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.pods[key]
	if r == nil || e.closed || ctx.Err() != nil {
		return
	}
	switch {
	case err == nil:
		r.State, r.BlockedBy, r.Detail = StateTerminating, nil, ""
	case apierrors.IsNotFound(err):
		// The helper counts the pod as removed and calls no callback.
		r.State, r.BlockedBy = StateGone, nil
		fmt.Fprintf(e.Out, "pod %s/%s is gone\n", r.Namespace, r.Name)
	case apierrors.IsTooManyRequests(err):
		r.State, r.BlockedBy, r.Detail = StateBlocked, names, err.Error()
		msg := fmt.Sprintf("pod %s/%s: eviction refused%s: %v", r.Namespace, r.Name, desc, err)
		if msg != r.lastBlock {
			r.lastBlock = msg
			fmt.Fprintf(e.ErrOut, "%s (retrying every %v)\n", msg, e.RetryInterval)
		}
	case apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		if r.pod.DeletionTimestamp == nil {
			fmt.Fprintf(e.ErrOut, "pod %s/%s: its namespace is terminating, retrying: %v\n", r.Namespace, r.Name, err)
		}
	default:
		r.State, r.Detail = StateFailed, err.Error()
	}
}

// describeBlock names the PodDisruptionBudgets covering pod, and renders
// them for a message (", blocked by PodDisruptionBudget ..."; empty when
// none is found).
func (e *Evictor) describeBlock(ctx context.Context, pod *corev1.Pod) ([]string, string) {
	pdbs, err := BlockingPDBs(ctx, e.Client, pod)
	if err != nil || len(pdbs) == 0 {
		return nil, ""
	}
	names := make([]string, 0, len(pdbs))
	descs := make([]string, 0, len(pdbs))
	for i := range pdbs {
		names = append(names, pdbs[i].Namespace+"/"+pdbs[i].Name)
		descs = append(descs, DescribePDB(&pdbs[i]))
	}
	return names, ", blocked by " + strings.Join(descs, "; ")
}

// Progress returns a snapshot of the pods' states, sorted by namespace/name.
func (e *Evictor) Progress() []PodProgress {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]PodProgress, 0, len(e.pods))
	for _, r := range e.pods {
		p := r.PodProgress
		p.BlockedBy = append([]string(nil), r.BlockedBy...)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// reportStatus prints, every StatusInterval until ctx ends, the pods the
// drain still waits for.
func (e *Evictor) reportStatus(ctx context.Context, node string) {
	_ = wait.PollUntilContextCancel(ctx, e.StatusInterval, false, func(context.Context) (bool, error) {
		var waiting []string
		for _, p := range e.Progress() {
			if p.State != StateGone && p.State != StateFailed {
				waiting = append(waiting, p.String())
			}
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(waiting) > 0 && !e.closed {
			fmt.Fprintf(e.ErrOut, "still waiting for %d pod(s) to leave node %q:\n  %s\n", len(waiting), node, strings.Join(waiting, "\n  "))
		}
		return false, nil
	})
}

// remaining re-checks, after ctx ended, which unfinished pods still exist.
func (e *Evictor) remaining(ctx context.Context) []PodProgress {
	checkCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var out []PodProgress
	for _, p := range e.Progress() {
		if p.State == StateGone {
			continue
		}
		cur, err := e.Client.CoreV1().Pods(p.Namespace).Get(checkCtx, p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != p.UID) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func verb(usingEviction bool) string {
	if usingEviction {
		return "evicting"
	}
	return "deleting"
}

func pastVerb(usingEviction bool) string {
	if usingEviction {
		return "evicted"
	}
	return "deleted"
}

// evictionObserver is the client the drain helper uses: every call goes
// through unchanged, and each eviction's answer is also handed to answered
// (the helper only prints it).
type evictionObserver struct {
	kubernetes.Interface
	answered func(ctx context.Context, ev *policyv1.Eviction, err error)
}

func (c *evictionObserver) PolicyV1() policyv1client.PolicyV1Interface {
	return observedPolicy{PolicyV1Interface: c.Interface.PolicyV1(), answered: c.answered}
}

type observedPolicy struct {
	policyv1client.PolicyV1Interface
	answered func(ctx context.Context, ev *policyv1.Eviction, err error)
}

func (p observedPolicy) Evictions(namespace string) policyv1client.EvictionInterface {
	return observedEvictions{EvictionInterface: p.PolicyV1Interface.Evictions(namespace), answered: p.answered}
}

type observedEvictions struct {
	policyv1client.EvictionInterface
	answered func(ctx context.Context, ev *policyv1.Eviction, err error)
}

func (o observedEvictions) Evict(ctx context.Context, ev *policyv1.Eviction) error {
	err := o.EvictionInterface.Evict(ctx, ev)
	o.answered(ctx, ev, err)
	return err
}
