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

// applyAddons server-side applies the add-on manifests (a restart
// re-applies them harmlessly) with apply (an addons.Applier), retrying
// until the API server accepts every object or ctx ends. The manifests
// are also written to the add-on directory, for a person to read.
//
// There is no field validation against the API server's OpenAPI (the
// manifests are ours, embedded, and a unit test decodes every one of them
// strictly in control/addons). The kubectl apply berth ran before with
// its default (strict) validation asked for the OpenAPI v3 documents and,
// for a kind whose CRD is applied in the same run (MetalLB's
// IPAddressPool and L2Advertisement), fell back to /openapi/v2 — which
// makes the API server build, serialise and keep the aggregated v2
// document for the rest of its life: ~1.4 s of its CPU at boot and
// ~18 MB of live heap (docs/performance.md, "Where MetalLB's API server
// memory went").
func (b *booter) applyAddons(ctx context.Context, apply func(ctx context.Context, files ...[]byte) error) {
	names, err := b.writeAddons()
	if err != nil {
		b.log.Error("writing add-ons", "err", err)
		return
	}
	files := make([][]byte, 0, len(names))
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(b.paths.AddonsDir(), name))
		if err != nil {
			b.log.Error("reading add-ons", "err", err)
			return
		}
		files = append(files, data)
	}
	attempt := 0
	started := time.Now()
	_ = wait.PollUntilContextCancel(ctx, b.addonRetry, true, func(ctx context.Context) (bool, error) {
		attempt++
		err := apply(ctx, files...)
		if err == nil {
			b.log.Info("add-ons applied", "addons", names, "attempts", attempt, "took", time.Since(started).Round(time.Millisecond))
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
