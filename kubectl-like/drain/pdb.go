package drain

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// MatchingPDBs returns the budgets among pdbs that cover pod: same namespace
// and a selector matching the pod's labels. A nil selector matches nothing,
// an empty one every pod of the namespace (policy/v1 semantics).
func MatchingPDBs(pod *corev1.Pod, pdbs []policyv1.PodDisruptionBudget) []policyv1.PodDisruptionBudget {
	var out []policyv1.PodDisruptionBudget
	for _, pdb := range pdbs {
		if pdb.Namespace != pod.Namespace || pdb.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			continue
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, pdb)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// BlockingPDBs looks up the PodDisruptionBudgets that cover pod.
func BlockingPDBs(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) ([]policyv1.PodDisruptionBudget, error) {
	list, err := client.PolicyV1().PodDisruptionBudgets(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing PodDisruptionBudgets in namespace %q: %w", pod.Namespace, err)
	}
	return MatchingPDBs(pod, list.Items), nil
}

// DescribePDB renders a budget and its current state, e.g.
// "PodDisruptionBudget default/web (0 disruptions allowed, 2/2 healthy, 2 required)".
func DescribePDB(pdb *policyv1.PodDisruptionBudget) string {
	return fmt.Sprintf("PodDisruptionBudget %s/%s (%d disruptions allowed, %d/%d healthy, %d required)",
		pdb.Namespace, pdb.Name, pdb.Status.DisruptionsAllowed,
		pdb.Status.CurrentHealthy, pdb.Status.ExpectedPods, pdb.Status.DesiredHealthy)
}
