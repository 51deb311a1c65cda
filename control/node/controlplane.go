package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/berth-dev/berth/control/addons"
	cc "github.com/berth-dev/berth/control/componentconfig"
	"github.com/berth-dev/berth/control/nodeconfig"
	"github.com/berth-dev/berth/control/supervisor"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// AddonsDir is where the rendered add-on manifests are written.
const AddonsDir = "/etc/berth/addons"

// applyAddons applies the add-on manifests with the embedded kubectl
// (server-side apply, so a restart re-applies them harmlessly), retrying
// until the API server accepts them.
func applyAddons(ctx context.Context, n *nodeconfig.Node, sup *supervisor.Supervisor, self string, log *slog.Logger) {
	rendered, err := addons.Render(n)
	if err != nil {
		log.Error("rendering add-ons", "err", err)
		return
	}
	if err := os.MkdirAll(AddonsDir, 0o755); err != nil {
		log.Error("creating add-on directory", "err", err)
		return
	}
	names := make([]string, 0, len(rendered))
	for name, data := range rendered {
		if err := os.WriteFile(filepath.Join(AddonsDir, name), data, 0o644); err != nil {
			log.Error("writing add-on", "addon", name, "err", err)
			return
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for attempt := 1; ; attempt++ {
		_, err := sup.Run(ctx, self, "kubectl", "--kubeconfig", nodeconfig.AdminKubeconfig,
			"apply", "--server-side", "--force-conflicts", "--field-manager=berth", "-f", AddonsDir)
		if err == nil {
			log.Info("add-ons applied", "addons", names)
			return
		}
		if attempt%10 == 0 {
			log.Warn("applying add-ons", "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// labelRoles gives every node the node-role.kubernetes.io/<role> label
// matching the berth.dev/role label its kubelet registered with (a kubelet
// may not set node-role labels on itself). It polls until ctx ends, so
// nodes that join later are labelled too.
func labelRoles(ctx context.Context, client kubernetes.Interface, log *slog.Logger) {
	for {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: cc.RoleLabel})
		if err == nil {
			for _, node := range nodes.Items {
				role := node.Labels[cc.RoleLabel]
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
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}
