package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/control/addons"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// writeAddons renders the add-on manifests into the add-on directory and
// returns their names, sorted.
func (b *booter) writeAddons() ([]string, error) {
	rendered, err := addons.Render(b.node, b.release)
	if err != nil {
		return nil, fmt.Errorf("rendering add-ons: %w", err)
	}
	dir := b.paths.AddonsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating add-on directory: %w", err)
	}
	names := make([]string, 0, len(rendered))
	for name, data := range rendered {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("writing add-on %s: %w", name, err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// applyAddons applies the add-on manifests with the embedded kubectl
// (server-side apply, so a restart re-applies them harmlessly), retrying
// until the API server accepts them or ctx ends.
//
// Field validation is off (--validate=ignore): the manifests are ours,
// embedded, and a unit test decodes every one of them strictly
// (control/addons). With kubectl's default (strict) it first asks the
// API server's OpenAPI v3 documents whether each object's endpoint takes
// the fieldValidation parameter, and for a kind whose CRD is applied in
// the same run (MetalLB's IPAddressPool and L2Advertisement) it finds no
// v3 document and falls back to /openapi/v2. That one request makes the
// API server build, serialise and keep the whole aggregated v2 document
// for the rest of its life: ~1.4 s of its CPU at boot and ~18 MB of live
// heap (~+30 MiB RSS) — most of what MetalLB cost the control-plane node
// (docs/performance.md, "Where MetalLB's API server memory went").
func (b *booter) applyAddons(ctx context.Context) {
	names, err := b.writeAddons()
	if err != nil {
		b.log.Error("writing add-ons", "err", err)
		return
	}
	attempt := 0
	_ = wait.PollUntilContextCancel(ctx, b.addonRetry, true, func(ctx context.Context) (bool, error) {
		attempt++
		_, err := b.run.Run(ctx, b.self, "kubectl", "--kubeconfig", b.paths.AdminKubeconfig(),
			"apply", "--server-side", "--force-conflicts", "--field-manager=berth", "--validate=ignore", "-f", b.paths.AddonsDir())
		if err == nil {
			b.log.Info("add-ons applied", "addons", names)
			return true, nil
		}
		if attempt%10 == 0 {
			b.log.Warn("applying add-ons", "attempt", attempt, "err", err)
		}
		return false, nil
	})
}

// labelRoles gives every node the node-role.kubernetes.io/<role> label
// matching the berth.dev/role label its kubelet registered with (a kubelet
// may not set node-role labels on itself). It polls until ctx ends, so
// nodes that join later are labelled too.
func labelRoles(ctx context.Context, client kubernetes.Interface, log *slog.Logger) {
	wait.UntilWithContext(ctx, func(ctx context.Context) { labelRolesOnce(ctx, client, log) }, 2*time.Second)
}

// labelRolesOnce labels the nodes that lack their role label now.
func labelRolesOnce(ctx context.Context, client kubernetes.Interface, log *slog.Logger) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: nodeconfig.LabelRole})
	if err != nil {
		return
	}
	for _, node := range nodes.Items {
		role := node.Labels[nodeconfig.LabelRole]
		key := "node-role.kubernetes.io/" + role
		if _, ok := node.Labels[key]; ok || role == "" {
			continue
		}
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:""}}}`, key)
		if _, err := client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			log.Warn("labelling node role", "node", node.Name, "err", err)
		}
	}
}
