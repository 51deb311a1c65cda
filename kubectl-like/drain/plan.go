// Package drain provides `berth drain`, `berth cordon` and `berth uncordon`.
//
// Drain cordons a node and then evicts its pods through the Eviction API, so
// that PodDisruptionBudgets are honoured. Evictions the API server refuses
// (HTTP 429) are retried; while a pod waits, the command names the
// PodDisruptionBudget that holds it. The decision of which pods to evict,
// which to leave alone and which block the drain is made by DecidePod and
// BuildPlan, separately from the API calls.
package drain

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Policy says which kinds of pods a drain may remove.
type Policy struct {
	// Force allows deleting pods that no controller will recreate
	// (pods without a controller, pods of a DaemonSet that is gone).
	Force bool
	// IgnoreDaemonSets leaves DaemonSet-managed pods on the node instead
	// of refusing to drain it.
	IgnoreDaemonSets bool
	// DeleteEmptyDirData allows evicting pods whose emptyDir volumes are
	// lost with them.
	DeleteEmptyDirData bool
}

// Action is what a drain does with one pod.
type Action string

const (
	// Evict: the pod is evicted (or deleted with --disable-eviction).
	Evict Action = "evict"
	// Skip: the pod stays on the node and does not block the drain.
	Skip Action = "skip"
	// Refuse: the pod blocks the drain until a flag allows removing it.
	Refuse Action = "refuse"
)

// Reason explains a decision.
type Reason string

const (
	// ReasonMirrorPod: a static pod's mirror; the kubelet owns it and the
	// API cannot remove it.
	ReasonMirrorPod Reason = "mirror pod of a static pod"
	// ReasonDaemonSet: managed by a DaemonSet, which would put it back.
	ReasonDaemonSet Reason = "managed by a DaemonSet"
	// ReasonOrphanedDaemonSet: claims a DaemonSet controller that no
	// longer exists.
	ReasonOrphanedDaemonSet Reason = "controlled by a DaemonSet that no longer exists"
	// ReasonLocalStorage: uses emptyDir volumes, whose data is lost.
	ReasonLocalStorage Reason = "uses emptyDir local storage"
	// ReasonUnmanaged: no controller will recreate the pod elsewhere.
	ReasonUnmanaged Reason = "not managed by a controller"
	// ReasonFinished: the pod has completed; removing it loses nothing.
	ReasonFinished Reason = "finished"
)

// overrideFlag names the flag that lets a drain remove a pod refused for r.
func overrideFlag(r Reason) string {
	switch r {
	case ReasonDaemonSet:
		return "--ignore-daemonsets"
	case ReasonOrphanedDaemonSet, ReasonUnmanaged:
		return "--force"
	case ReasonLocalStorage:
		return "--delete-emptydir-data"
	}
	return ""
}

// Decision is the drain's verdict on one pod.
type Decision struct {
	Pod    corev1.Pod
	Action Action
	// Reasons lists why the pod is skipped or refused; for evicted pods,
	// the conditions a flag overrode (worth a warning).
	Reasons []Reason
}

// DaemonSetLookup reports whether the DaemonSet namespace/name exists.
type DaemonSetLookup func(namespace, name string) (bool, error)

// DecidePod classifies one pod of a node being drained.
//
//   - mirror pods are skipped: only the kubelet can remove them;
//   - finished pods (Succeeded/Failed) are always evicted;
//   - pods of an existing DaemonSet are skipped with --ignore-daemonsets and
//     refused otherwise; pods of a vanished DaemonSet need --force;
//   - pods with emptyDir volumes need --delete-emptydir-data;
//   - pods without a controller need --force.
//
// A pod refused for several reasons lists all of them, so one rerun with the
// right flags suffices.
func DecidePod(pod corev1.Pod, policy Policy, dsExists DaemonSetLookup) (Decision, error) {
	d := Decision{Pod: pod, Action: Evict}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		d.Action, d.Reasons = Skip, []Reason{ReasonMirrorPod}
		return d, nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		d.Reasons = []Reason{ReasonFinished}
		return d, nil
	}

	var refused, overridden []Reason
	controller := metav1.GetControllerOf(&pod)
	if controller != nil && isDaemonSet(controller) {
		exists, err := dsExists(pod.Namespace, controller.Name)
		if err != nil {
			return d, fmt.Errorf("looking up DaemonSet %s/%s of pod %s: %w", pod.Namespace, controller.Name, pod.Name, err)
		}
		switch {
		case exists && policy.IgnoreDaemonSets:
			d.Action, d.Reasons = Skip, []Reason{ReasonDaemonSet}
			return d, nil
		case exists:
			refused = append(refused, ReasonDaemonSet)
		case policy.Force:
			overridden = append(overridden, ReasonOrphanedDaemonSet)
		default:
			refused = append(refused, ReasonOrphanedDaemonSet)
		}
	}
	if hasEmptyDir(pod) {
		if policy.DeleteEmptyDirData {
			overridden = append(overridden, ReasonLocalStorage)
		} else {
			refused = append(refused, ReasonLocalStorage)
		}
	}
	if controller == nil {
		if policy.Force {
			overridden = append(overridden, ReasonUnmanaged)
		} else {
			refused = append(refused, ReasonUnmanaged)
		}
	}
	if len(refused) > 0 {
		d.Action, d.Reasons = Refuse, refused
		return d, nil
	}
	d.Reasons = overridden
	return d, nil
}

func isDaemonSet(ref *metav1.OwnerReference) bool {
	return ref.Kind == "DaemonSet" && strings.HasPrefix(ref.APIVersion, "apps/")
}

func hasEmptyDir(pod corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil {
			return true
		}
	}
	return false
}

// Plan is the set of decisions for one node.
type Plan struct {
	Node      string
	Decisions []Decision
}

// PodsToEvict returns the pods the drain removes.
func (p *Plan) PodsToEvict() []corev1.Pod {
	var pods []corev1.Pod
	for _, d := range p.Decisions {
		if d.Action == Evict {
			pods = append(pods, d.Pod)
		}
	}
	return pods
}

// WithAction returns the decisions with action a.
func (p *Plan) WithAction(a Action) []Decision {
	var out []Decision
	for _, d := range p.Decisions {
		if d.Action == a {
			out = append(out, d)
		}
	}
	return out
}

// groupByReason maps each reason to the "namespace/name" of the pods of ds
// that carry it, in a stable order.
func groupByReason(ds []Decision) ([]Reason, map[Reason][]string) {
	groups := map[Reason][]string{}
	var order []Reason
	for _, d := range ds {
		for _, r := range d.Reasons {
			if _, seen := groups[r]; !seen {
				order = append(order, r)
			}
			groups[r] = append(groups[r], d.Pod.Namespace+"/"+d.Pod.Name)
		}
	}
	return order, groups
}

// RefusalError describes the refused pods, grouped by reason with the flag
// that would allow the drain; nil when nothing is refused.
func (p *Plan) RefusalError() error {
	refused := p.WithAction(Refuse)
	if len(refused) == 0 {
		return nil
	}
	order, groups := groupByReason(refused)
	var b strings.Builder
	fmt.Fprintf(&b, "cannot drain node %q: %d pod(s) cannot be removed:", p.Node, len(refused))
	for _, r := range order {
		fmt.Fprintf(&b, "\n  %s (use %s to override): %s", r, overrideFlag(r), strings.Join(groups[r], ", "))
	}
	return fmt.Errorf("%s", b.String())
}

// Warnings describes pods that are skipped, and evicted pods whose removal a
// flag allowed, one line per reason.
func (p *Plan) Warnings() []string {
	var lines []string
	order, groups := groupByReason(p.WithAction(Skip))
	for _, r := range order {
		lines = append(lines, fmt.Sprintf("leaving pods that are %s on the node: %s", phrase(r), strings.Join(groups[r], ", ")))
	}
	var overridden []Decision
	for _, d := range p.WithAction(Evict) {
		if len(d.Reasons) > 0 && !(len(d.Reasons) == 1 && d.Reasons[0] == ReasonFinished) {
			overridden = append(overridden, d)
		}
	}
	order, groups = groupByReason(overridden)
	for _, r := range order {
		lines = append(lines, fmt.Sprintf("removing pods that are %s: %s", phrase(r), strings.Join(groups[r], ", ")))
	}
	return lines
}

func phrase(r Reason) string {
	switch r {
	case ReasonMirrorPod:
		return "mirrors of static pods"
	case ReasonDaemonSet:
		return "managed by a DaemonSet"
	case ReasonOrphanedDaemonSet:
		return "orphaned by their DaemonSet"
	case ReasonLocalStorage:
		return "using emptyDir local storage"
	case ReasonUnmanaged:
		return "not managed by a controller"
	}
	return string(r)
}

// BuildPlan lists the pods on node (restricted by podSelector, a label
// selector; empty for all) and decides what the drain does with each.
func BuildPlan(ctx context.Context, client kubernetes.Interface, node, podSelector string, policy Policy) (*Plan, error) {
	selector, err := labels.Parse(podSelector)
	if err != nil {
		return nil, fmt.Errorf("parsing --pod-selector %q: %w", podSelector, err)
	}
	list, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		LabelSelector: selector.String(),
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing pods on node %q: %w", node, err)
	}
	pods := list.Items
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})

	dsCache := map[string]bool{}
	lookup := func(namespace, name string) (bool, error) {
		key := namespace + "/" + name
		if exists, ok := dsCache[key]; ok {
			return exists, nil
		}
		_, err := client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			dsCache[key] = true
		case apierrors.IsNotFound(err):
			dsCache[key] = false
		default:
			return false, err
		}
		return dsCache[key], nil
	}

	plan := &Plan{Node: node}
	for _, pod := range pods {
		if pod.Spec.NodeName != "" && pod.Spec.NodeName != node {
			// Defensive: a server (or fake) that ignored the field selector.
			continue
		}
		d, err := DecidePod(pod, policy, lookup)
		if err != nil {
			return nil, err
		}
		plan.Decisions = append(plan.Decisions, d)
	}
	return plan, nil
}
