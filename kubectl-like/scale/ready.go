package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Target names one scaled object to wait for.
type Target struct {
	GroupKind schema.GroupKind
	Namespace string
	Name      string
}

// String renders the target the way kubectl names objects
// (deployment.apps/web, replicationcontroller/db).
func (t Target) String() string {
	kind := strings.ToLower(t.GroupKind.Kind)
	if t.GroupKind.Group != "" {
		kind += "." + t.GroupKind.Group
	}
	return kind + "/" + t.Name
}

// Readiness reports whether obj (a Deployment, ReplicaSet, StatefulSet or
// ReplicationController) runs want replicas that are all ready, together
// with a short summary such as "2/3 ready". It returns an error for other
// kinds and when the object's desired size is no longer want (somebody
// scaled it again meanwhile).
func Readiness(obj runtime.Object, want int32) (bool, string, error) {
	var (
		specReplicas            *int32
		generation, observed    int64
		current, ready, updated int32
		checkUpdated            bool
	)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		specReplicas, generation, observed = o.Spec.Replicas, o.Generation, o.Status.ObservedGeneration
		current, ready, updated, checkUpdated = o.Status.Replicas, o.Status.ReadyReplicas, o.Status.UpdatedReplicas, true
	case *appsv1.ReplicaSet:
		specReplicas, generation, observed = o.Spec.Replicas, o.Generation, o.Status.ObservedGeneration
		current, ready = o.Status.Replicas, o.Status.ReadyReplicas
	case *appsv1.StatefulSet:
		specReplicas, generation, observed = o.Spec.Replicas, o.Generation, o.Status.ObservedGeneration
		current, ready = o.Status.Replicas, o.Status.ReadyReplicas
	case *corev1.ReplicationController:
		specReplicas, generation, observed = o.Spec.Replicas, o.Generation, o.Status.ObservedGeneration
		current, ready = o.Status.Replicas, o.Status.ReadyReplicas
	default:
		return false, "", fmt.Errorf("waiting for readiness is not supported for %T", obj)
	}
	desired := int32(1) // the API default when spec.replicas is unset
	if specReplicas != nil {
		desired = *specReplicas
	}
	if desired != want {
		return false, "", fmt.Errorf("desired replicas changed to %d while waiting for %d", desired, want)
	}
	summary := fmt.Sprintf("%d/%d ready", ready, want)
	if current != want {
		summary += fmt.Sprintf(", %d running", current)
	}
	if observed < generation {
		return false, summary + ", scale not yet observed by the controller", nil
	}
	if checkUpdated && updated != want {
		return false, summary + fmt.Sprintf(", %d up to date", updated), nil
	}
	return current == want && ready == want, summary, nil
}

// getObject fetches the current state of a target through the typed client.
func getObject(ctx context.Context, client kubernetes.Interface, t Target) (runtime.Object, error) {
	opts := metav1.GetOptions{}
	switch t.GroupKind {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return client.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, opts)
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		return client.AppsV1().ReplicaSets(t.Namespace).Get(ctx, t.Name, opts)
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		return client.AppsV1().StatefulSets(t.Namespace).Get(ctx, t.Name, opts)
	case schema.GroupKind{Group: "", Kind: "ReplicationController"}:
		return client.CoreV1().ReplicationControllers(t.Namespace).Get(ctx, t.Name, opts)
	}
	return nil, fmt.Errorf("waiting for readiness is not supported for %s", t.GroupKind)
}

// Supported reports whether --wait knows how to judge readiness of gk.
func Supported(gk schema.GroupKind) bool {
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"},
		schema.GroupKind{Group: "apps", Kind: "ReplicaSet"},
		schema.GroupKind{Group: "apps", Kind: "StatefulSet"},
		schema.GroupKind{Group: "", Kind: "ReplicationController"}:
		return true
	}
	return false
}

// WaitForReady polls every interval until each target runs want ready
// replicas, ctx ends, or timeout passes (0: no limit beyond ctx). Progress
// lines go to progress whenever a target's state changes.
func WaitForReady(ctx context.Context, client kubernetes.Interface, targets []Target, want int32, interval, timeout time.Duration, progress io.Writer) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for _, t := range targets {
		last := ""
		err := wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
			obj, err := getObject(ctx, client, t)
			if err != nil {
				if ctx.Err() != nil {
					return false, nil
				}
				return false, fmt.Errorf("getting %s: %w", t, err)
			}
			ok, summary, err := Readiness(obj, want)
			if err != nil {
				return false, fmt.Errorf("waiting for %s: %w", t, err)
			}
			if summary != last {
				last = summary
				if ok {
					fmt.Fprintf(progress, "%s: %s\n", t, summary)
				} else {
					fmt.Fprintf(progress, "waiting for %s: %s\n", t, summary)
				}
			}
			return ok, nil
		})
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || wait.Interrupted(err) {
				state := last
				if state == "" {
					state = "state unknown"
				}
				if timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("timed out after %v waiting for %s to have %d ready replicas (%s)", timeout, t, want, state)
				}
				return fmt.Errorf("stopped waiting for %s to have %d ready replicas (%s): %w", t, want, state, ctx.Err())
			}
			return err
		}
	}
	return nil
}
