// Package drain provides `berth drain`, `berth cordon` and `berth uncordon`.
//
// Drain is kubectl's drain helper (k8s.io/kubectl/pkg/drain) — its pod
// filters, its eviction loop that retries refused evictions, its wait for
// the pods to go — plus what berth adds on top: every refusal is reported
// at once with the flag that overrides it, an eviction a
// PodDisruptionBudget refuses names that budget, and a drain that stops
// early lists the pods it left behind. A refused drain evicts nothing; the
// node, cordoned first, stays cordoned.
package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	kdrain "k8s.io/kubectl/pkg/drain"
)

// Policy says which kinds of pods a drain may remove. Each field is one of
// kubectl drain's override flags.
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

// override is one of the flags of Policy.
type override struct {
	flag  string
	field func(*Policy) *bool
}

// overrides lists the flags in the order refusals are reported.
var overrides = []override{
	{"--ignore-daemonsets", func(p *Policy) *bool { return &p.IgnoreDaemonSets }},
	{"--delete-emptydir-data", func(p *Policy) *bool { return &p.DeleteEmptyDirData }},
	{"--force", func(p *Policy) *bool { return &p.Force }},
}

// helper returns kubectl's drain helper set up to decide with p. Its own
// output is discarded: berth prints its own lines (see Evictor).
func (p Policy) helper(ctx context.Context, client kubernetes.Interface, podSelector string) *kdrain.Helper {
	return &kdrain.Helper{
		Ctx:                 ctx,
		Client:              client,
		Force:               p.Force,
		IgnoreAllDaemonSets: p.IgnoreDaemonSets,
		DeleteEmptyDirData:  p.DeleteEmptyDirData,
		PodSelector:         podSelector,
		GracePeriodSeconds:  -1,
		Out:                 io.Discard,
		ErrOut:              io.Discard,
	}
}

// Plan is what a drain of one node does, as kubectl's drain helper
// decides it.
type Plan struct {
	Node string
	// Pods are the pods the drain evicts (or deletes).
	Pods []corev1.Pod
	// Warnings are kubectl's notes on pods left on the node or removed
	// only because a flag allowed it, one line per kind, sorted.
	Warnings []string
	// Refusals are the pods the drain refuses to remove, by the flag
	// that would allow it.
	Refusals []Refusal
	// Unfixable are refusals no flag overrides (for example a DaemonSet
	// that could not be looked up).
	Unfixable []string
}

// Refusal groups kubectl's refusals that one flag overrides.
type Refusal struct {
	Flag string
	// Reasons are kubectl's messages, for example "cannot delete Pods
	// with local storage (use --delete-emptydir-data to override):
	// default/cache".
	Reasons []string
}

// BuildPlan lists the pods on node (restricted by podSelector, a label
// selector; empty for all) and lets kubectl's drain helper decide what to
// do with each under policy.
func BuildPlan(ctx context.Context, client kubernetes.Interface, node, podSelector string, policy Policy) (*Plan, error) {
	list, errs := policy.helper(ctx, client, podSelector).GetPodsForDeletion(node)
	if list == nil {
		// Only listing the pods failed: there is nothing to decide on.
		return nil, fmt.Errorf("listing pods on node %q: %w", node, errors.Join(errs...))
	}
	plan := &Plan{Node: node, Pods: list.Pods(), Warnings: splitWarnings(list.Warnings())}
	if len(errs) == 0 {
		return plan, nil
	}
	refusals, unfixable, err := flagsNeeded(ctx, client, node, podSelector, policy)
	if err != nil {
		return nil, err
	}
	if len(refusals) == 0 && len(unfixable) == 0 {
		// The pods changed between the look-ups: report the first answer.
		unfixable = messages(errs)
	}
	plan.Refusals, plan.Unfixable = refusals, unfixable
	return plan, nil
}

// flagsNeeded works out every flag a rerun needs. kubectl's helper stops at
// the first reason it refuses a pod for, so a pod with emptyDir data and no
// controller is only reported for its emptyDir, and the rerun with
// --delete-emptydir-data fails again for --force. Asked again with every
// override flag but one, the helper refuses exactly the pods that need
// that one; what it refuses with all of them set, no flag fixes. This
// costs a few more pod listings, and only when the drain is refused anyway.
func flagsNeeded(ctx context.Context, client kubernetes.Interface, node, podSelector string, policy Policy) ([]Refusal, []string, error) {
	var all Policy
	for _, o := range overrides {
		*o.field(&all) = true
	}
	refusedWith := func(p Policy) ([]string, error) {
		list, errs := p.helper(ctx, client, podSelector).GetPodsForDeletion(node)
		if list == nil {
			return nil, fmt.Errorf("listing pods on node %q: %w", node, errors.Join(errs...))
		}
		return messages(errs), nil
	}
	unfixable, err := refusedWith(all)
	if err != nil {
		return nil, nil, err
	}
	var refusals []Refusal
	for _, o := range overrides {
		if *o.field(&policy) {
			continue
		}
		without := all
		*o.field(&without) = false
		reasons, err := refusedWith(without)
		if err != nil {
			return nil, nil, err
		}
		reasons = slices.DeleteFunc(reasons, func(r string) bool { return slices.Contains(unfixable, r) })
		if len(reasons) > 0 {
			refusals = append(refusals, Refusal{Flag: o.flag, Reasons: reasons})
		}
	}
	return refusals, unfixable, nil
}

// messages renders errs sorted: the helper builds them from a map.
func messages(errs []error) []string {
	out := make([]string, 0, len(errs))
	for _, err := range errs {
		out = append(out, err.Error())
	}
	slices.Sort(out)
	return out
}

// splitWarnings turns the helper's one-line "kind: pods; kind: pods" into
// sorted lines (the helper builds it from a map).
func splitWarnings(w string) []string {
	if w == "" {
		return nil
	}
	lines := strings.Split(w, "; ")
	slices.Sort(lines)
	return lines
}

// RefusalError describes what the drain refuses to remove, each with the
// flag that would allow it, and the flags a rerun needs; nil when nothing
// is refused.
func (p *Plan) RefusalError() error {
	if len(p.Refusals) == 0 && len(p.Unfixable) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cannot drain node %q, nothing was evicted:", p.Node)
	var flags []string
	for _, r := range p.Refusals {
		flags = append(flags, r.Flag)
		for _, reason := range r.Reasons {
			// kubectl names the flag for most refusals, not for a
			// pod whose DaemonSet is gone.
			if !strings.Contains(reason, r.Flag) {
				reason += " (use " + r.Flag + " to override)"
			}
			b.WriteString("\n  " + reason)
		}
	}
	for _, u := range p.Unfixable {
		b.WriteString("\n  " + u)
	}
	if len(flags) > 0 {
		fmt.Fprintf(&b, "\nto go ahead, run the drain again with %s", strings.Join(flags, " "))
	}
	return errors.New(b.String())
}
