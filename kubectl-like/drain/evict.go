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
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
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

// Evictor removes pods from a node through the Eviction API (or plain
// deletion when DisableEviction is set), retrying refused evictions and
// waiting until the pods are gone.
type Evictor struct {
	Client kubernetes.Interface
	// GracePeriodSeconds overrides the pods' termination grace period;
	// negative keeps each pod's own.
	GracePeriodSeconds int
	// DisableEviction deletes pods directly, bypassing PodDisruptionBudgets.
	DisableEviction bool
	// ServerDryRun sends every request as a server-side dry run and does
	// not wait for pods to go.
	ServerDryRun bool
	// RetryInterval is the pause before retrying a refused eviction.
	RetryInterval time.Duration
	// PollInterval is how often to check whether evicted pods are gone.
	PollInterval time.Duration
	// StatusInterval, when > 0, is how often to print the pods still
	// being waited for.
	StatusInterval time.Duration

	Out    io.Writer
	ErrOut io.Writer

	mu       sync.Mutex
	progress map[types.UID]*PodProgress
}

// syncWriter serialises writes from the per-pod goroutines.
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Run removes pods and waits until they are gone or ctx ends. When ctx ends
// first it returns an *IncompleteError listing the pods still on the node;
// when some pods fail for good it returns their errors once the others are
// done.
func (e *Evictor) Run(ctx context.Context, node string, pods []corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	var outMu sync.Mutex
	out := syncWriter{&outMu, writerOr(e.Out)}
	errOut := syncWriter{&outMu, writerOr(e.ErrOut)}

	e.mu.Lock()
	e.progress = map[types.UID]*PodProgress{}
	for i := range pods {
		e.progress[pods[i].UID] = &PodProgress{Namespace: pods[i].Namespace, Name: pods[i].Name, UID: pods[i].UID, State: StatePending}
	}
	e.mu.Unlock()

	dryRun := cmdutil.DryRunNone
	if e.ServerDryRun {
		dryRun = cmdutil.DryRunServer
	}
	helper := &kdrain.Helper{Ctx: ctx, Client: e.Client, GracePeriodSeconds: e.GracePeriodSeconds, DryRunStrategy: dryRun}

	statusDone := make(chan struct{})
	if e.StatusInterval > 0 {
		go e.reportStatus(ctx, node, errOut, statusDone)
	}

	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = e.removePod(ctx, helper, pods[i], out, errOut)
		}(i)
	}
	wg.Wait()
	close(statusDone)

	if ctx.Err() != nil {
		return &IncompleteError{Node: node, Cause: ctx.Err(), Remaining: e.remaining(ctx)}
	}
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	return utilerrors.NewAggregate(failed)
}

func writerOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func (e *Evictor) update(uid types.UID, fn func(p *PodProgress)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.progress[uid]; ok {
		fn(p)
	}
}

// Progress returns a snapshot of the pods' states, sorted by namespace/name.
func (e *Evictor) Progress() []PodProgress {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]PodProgress, 0, len(e.progress))
	for _, p := range e.progress {
		cp := *p
		cp.BlockedBy = append([]string(nil), p.BlockedBy...)
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (e *Evictor) reportStatus(ctx context.Context, node string, w io.Writer, done <-chan struct{}) {
	t := time.NewTicker(e.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
			var waiting []string
			for _, p := range e.Progress() {
				if p.State != StateGone && p.State != StateFailed {
					waiting = append(waiting, p.String())
				}
			}
			if len(waiting) > 0 {
				fmt.Fprintf(w, "still waiting for %d pod(s) to leave node %q:\n  %s\n", len(waiting), node, strings.Join(waiting, "\n  "))
			}
		}
	}
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

func (e *Evictor) verb() string {
	if e.DisableEviction {
		return "deleting"
	}
	return "evicting"
}

func (e *Evictor) removePod(ctx context.Context, h *kdrain.Helper, pod corev1.Pod, out, errOut io.Writer) error {
	suffix := ""
	if e.ServerDryRun {
		suffix = " (server dry run)"
	}
	fmt.Fprintf(out, "%s pod %s/%s%s\n", e.verb(), pod.Namespace, pod.Name, suffix)
	lastBlock := ""
retry:
	for {
		var err error
		if e.DisableEviction {
			err = h.DeletePod(pod)
		} else {
			err = h.EvictPod(pod, policyv1.SchemeGroupVersion)
		}
		if err == nil {
			break retry
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case apierrors.IsNotFound(err):
			e.update(pod.UID, func(p *PodProgress) { p.State = StateGone })
			return nil
		case apierrors.IsTooManyRequests(err):
			names, desc := e.describeBlock(ctx, &pod)
			e.update(pod.UID, func(p *PodProgress) {
				p.State, p.BlockedBy, p.Detail = StateBlocked, names, err.Error()
			})
			msg := fmt.Sprintf("pod %s/%s: eviction refused", pod.Namespace, pod.Name)
			if desc != "" {
				msg += ", blocked by " + desc
			}
			msg += ": " + err.Error()
			if e.ServerDryRun {
				return fmt.Errorf("%s", msg)
			}
			if msg != lastBlock {
				fmt.Fprintf(errOut, "%s (retrying every %v)\n", msg, e.RetryInterval)
				lastBlock = msg
			}
		case apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			if pod.DeletionTimestamp != nil {
				// Already being deleted along with its namespace: just wait.
				break retry
			}
			fmt.Fprintf(errOut, "pod %s/%s: namespace is terminating, retrying: %v\n", pod.Namespace, pod.Name, err)
		default:
			e.update(pod.UID, func(p *PodProgress) { p.State, p.Detail = StateFailed, err.Error() })
			return fmt.Errorf("%s pod %s/%s: %w", e.verb(), pod.Namespace, pod.Name, err)
		}
		if !sleepCtx(ctx, e.RetryInterval) {
			return ctx.Err()
		}
		fresh, gerr := e.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr) || (gerr == nil && fresh.UID != pod.UID):
			e.update(pod.UID, func(p *PodProgress) { p.State = StateGone })
			fmt.Fprintf(out, "pod %s/%s is gone\n", pod.Namespace, pod.Name)
			return nil
		case gerr == nil:
			pod = *fresh
		}
	}
	if e.ServerDryRun {
		e.update(pod.UID, func(p *PodProgress) { p.State = StateGone })
		fmt.Fprintf(out, "pod %s/%s %s%s\n", pod.Namespace, pod.Name, e.pastVerb(), suffix)
		return nil
	}
	e.update(pod.UID, func(p *PodProgress) { p.State, p.BlockedBy, p.Detail = StateTerminating, nil, "" })
	for {
		cur, err := e.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != pod.UID) {
			e.update(pod.UID, func(p *PodProgress) { p.State = StateGone })
			fmt.Fprintf(out, "pod %s/%s %s\n", pod.Namespace, pod.Name, e.pastVerb())
			return nil
		}
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(errOut, "pod %s/%s: checking whether it is gone: %v\n", pod.Namespace, pod.Name, err)
		}
		if !sleepCtx(ctx, e.PollInterval) {
			return ctx.Err()
		}
	}
}

func (e *Evictor) pastVerb() string {
	if e.DisableEviction {
		return "deleted"
	}
	return "evicted"
}

// describeBlock names the PodDisruptionBudgets covering pod.
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
	return names, strings.Join(descs, "; ")
}

// sleepCtx waits d or until ctx ends; it reports whether the full d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
