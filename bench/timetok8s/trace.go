package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// traceFlag prints, for each run, when the bench saw each node, pod and
// EndpointSlice change state (watches; the API's own timestamps have
// one-second resolution, too coarse for a 6-second create).
var traceFlag = flag.Bool("trace", false, "print when nodes, pods and EndpointSlices changed state during each run")

// tracer prints a state line each time an object's summary changes.
type tracer struct {
	start time.Time
	mu    sync.Mutex
	last  map[string]string
}

// watchAll starts watches on nodes, pods and EndpointSlices; they end with
// ctx. Watches that cannot start yet (API not serving) are retried.
func (t *tracer) watchAll(ctx context.Context, client kubernetes.Interface) {
	t.last = map[string]string{}
	starts := map[string]func() (watch.Interface, error){
		"node": func() (watch.Interface, error) {
			return client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
		},
		"pod": func() (watch.Interface, error) {
			return client.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
		},
		"slice": func() (watch.Interface, error) {
			return client.DiscoveryV1().EndpointSlices("").Watch(ctx, metav1.ListOptions{})
		},
	}
	for _, start := range starts {
		go func() {
			for ctx.Err() == nil {
				w, err := start()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for ev := range w.ResultChan() {
					t.observe(ev.Object)
				}
			}
		}()
	}
}

func (t *tracer) observe(obj any) {
	var key, state string
	switch o := obj.(type) {
	case *corev1.Node:
		key = "node/" + o.Name
		var parts []string
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.NodeReady {
				parts = append(parts, "Ready="+string(c.Status))
			}
		}
		for _, taint := range o.Spec.Taints {
			parts = append(parts, "taint "+taint.Key+":"+string(taint.Effect))
		}
		if o.Spec.PodCIDR != "" {
			parts = append(parts, "podCIDR")
		}
		state = strings.Join(parts, " ")
	case *corev1.Pod:
		key = "pod/" + o.Namespace + "/" + o.GenerateName
		if o.GenerateName == "" {
			key = "pod/" + o.Namespace + "/" + o.Name
		}
		parts := []string{string(o.Status.Phase)}
		if o.Spec.NodeName != "" {
			parts = append(parts, "on "+o.Spec.NodeName)
		}
		for _, c := range o.Status.Conditions {
			if c.Status == corev1.ConditionTrue {
				parts = append(parts, string(c.Type))
			} else if c.Reason != "" {
				parts = append(parts, string(c.Type)+"="+c.Reason)
			}
		}
		for _, c := range o.Status.ContainerStatuses {
			switch {
			case c.State.Running != nil:
				parts = append(parts, c.Name+" running")
			case c.State.Waiting != nil:
				parts = append(parts, c.Name+" waiting "+c.State.Waiting.Reason)
			case c.State.Terminated != nil:
				parts = append(parts, c.Name+" exited "+c.State.Terminated.Reason)
			}
			if c.RestartCount > 0 {
				parts = append(parts, fmt.Sprintf("restarts=%d", c.RestartCount))
			}
		}
		state = strings.Join(parts, " ")
	case *discoveryv1.EndpointSlice:
		key = "slice/" + o.Namespace + "/" + o.Labels[discoveryv1.LabelServiceName]
		ready := 0
		for _, e := range o.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready++
			}
		}
		state = fmt.Sprintf("%d endpoints, %d ready", len(o.Endpoints), ready)
	default:
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last[key] == state {
		return
	}
	t.last[key] = state
	fmt.Fprintf(os.Stderr, "  %6.2fs %-45s %s\n", since(t.start), key, state)
}

// mark prints one of the bench's own phases among the watched changes.
func (t *tracer) mark(phase string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(os.Stderr, "  %6.2fs == %s\n", since(t.start), phase)
}
