package cluster

import (
	"context"
	"encoding/json"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/sriov"
)

// VFUse is one SR-IOV VF a node holds and the pod it is allocated to.
type VFUse struct {
	PF           string `json:"pf"`
	PCIAddress   string `json:"pciAddress"`
	Interface    string `json:"interface,omitempty"`
	Mode         string `json:"mode"`
	ResourceName string `json:"resourceName"`
	// Pod is namespace/name of the pod the kubelet allocated it to ("":
	// free).
	Pod string `json:"pod,omitempty"`
}

// deviceCheckpoint is where the kubelet's device manager records which
// device IDs each pod's containers were allocated.
const deviceCheckpoint = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"

// checkpoint is the part of the kubelet's device manager checkpoint berth
// reads. Its Go type lives in k8s.io/kubernetes (kubelet internals), which
// the CLI does not import for one JSON shape; the file's format is
// versioned by the kubelet and has kept these fields since v1.20.
type checkpoint struct {
	Data struct {
		PodDeviceEntries []struct {
			PodUID       string
			ResourceName string
			// DeviceIDs maps NUMA node to device IDs.
			DeviceIDs map[string][]string
		}
	}
}

// VFUsage returns, per node name, the VFs each node holds and which pod
// (if any) each is allocated to. client may be nil (no pod names then).
func VFUsage(ctx context.Context, p provider.Provider, client kubernetes.Interface, nodes []provider.Node) map[string][]VFUse {
	out := map[string][]VFUse{}
	for _, n := range nodes {
		vfs, err := sriov.NodeVFs(n)
		if err != nil || len(vfs) == 0 {
			continue
		}
		byDevice := map[string]string{} // PCI address → pod UID
		if data, err := p.ReadFile(ctx, n.Name, deviceCheckpoint); err == nil {
			var cp checkpoint
			if json.Unmarshal(data, &cp) == nil {
				for _, e := range cp.Data.PodDeviceEntries {
					for _, ids := range e.DeviceIDs {
						for _, id := range ids {
							byDevice[id] = e.PodUID
						}
					}
				}
			}
		}
		pods := map[string]string{} // UID → namespace/name
		if client != nil && len(byDevice) > 0 {
			if list, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name}); err == nil {
				for _, pod := range list.Items {
					if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
						pods[string(pod.UID)] = pod.Namespace + "/" + pod.Name
					}
				}
			}
		}
		for _, vf := range vfs {
			use := VFUse{PF: vf.PF, PCIAddress: vf.PCIAddress, Interface: vf.Interface, Mode: vf.Mode, ResourceName: vf.ResourceName}
			if uid, ok := byDevice[vf.PCIAddress]; ok {
				// A checkpoint entry of a pod that is gone is stale.
				use.Pod = pods[uid]
			}
			out[n.Name] = append(out[n.Name], use)
		}
		sort.Slice(out[n.Name], func(i, j int) bool { return out[n.Name][i].PCIAddress < out[n.Name][j].PCIAddress })
	}
	return out
}
