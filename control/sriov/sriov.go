// Package sriov is berth-node's kubelet device plugin for the SR-IOV
// virtual functions the host gave the node (node.json's SRIOV list): one
// plugin server per resource name, registered with the kubelet, reporting
// each VF's health and handing out what a container needs to use it.
//
// In netdevice mode a VF is a network interface in the node's namespace
// until berth's chained CNI plugin (package cniplugin) moves it into the
// pod the kubelet allocated it to; in vfio mode it is a /dev/vfio group a
// DPDK application opens.
package sriov

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// ByResource groups vfs by resource name, each group sorted by PCI
// address.
func ByResource(vfs []nodeconfig.VF) map[string][]nodeconfig.VF {
	out := map[string][]nodeconfig.VF{}
	for _, vf := range vfs {
		out[vf.ResourceName] = append(out[vf.ResourceName], vf)
	}
	for _, group := range out {
		sort.Slice(group, func(i, j int) bool { return group[i].PCIAddress < group[j].PCIAddress })
	}
	return out
}

// HasNetdevice reports whether any of vfs is in netdevice mode: only then
// does the node's pod network need the berth-sriov CNI step.
func HasNetdevice(vfs []nodeconfig.VF) bool {
	for _, vf := range vfs {
		if vf.Mode == nodeconfig.SRIOVModeNetdevice {
			return true
		}
	}
	return false
}

// EnvName is the environment variable Allocate sets to the comma-separated
// PCI addresses of a container's devices of resource: the convention of
// the upstream SR-IOV network device plugin (k8snetworkplumbingwg), which
// DPDK applications and CNFs read. Upstream builds
// PCIDEVICE_<prefix>_<name>, upper-cased, with dots replaced by
// underscores; berth.dev/ens1f0 becomes PCIDEVICE_BERTH_DEV_ENS1F0. Like
// upstream, other characters (a dash) are kept as they are.
func EnvName(resource string) string {
	prefix, name, ok := strings.Cut(resource, "/")
	key := "PCIDEVICE_" + prefix
	if ok {
		key += "_" + name
	}
	return strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// InfoEnvName is upstream's companion variable to EnvName: a JSON object
// with what each device's info providers know about it.
func InfoEnvName(resource string) string { return EnvName(resource) + "_INFO" }

// deviceInfo is one device's entry in the _INFO variable, in upstream's
// shape: info provider name → key → value.
func deviceInfo(vf nodeconfig.VF) map[string]map[string]string {
	info := map[string]map[string]string{"generic": {"deviceID": vf.PCIAddress}}
	if vf.Mode == nodeconfig.SRIOVModeVFIO {
		info["vfio"] = map[string]string{"mount": vfioContainerDevice, "dev-mount": vfioGroupDevice(vf.IOMMUGroup)}
	}
	return info
}

// infoEnv returns the _INFO variable's value for vfs.
func infoEnv(vfs []nodeconfig.VF) (string, error) {
	all := map[string]map[string]map[string]string{}
	for _, vf := range vfs {
		all[vf.PCIAddress] = deviceInfo(vf)
	}
	b, err := json.Marshal(all)
	if err != nil {
		return "", fmt.Errorf("encoding device info: %w", err)
	}
	return string(b), nil
}

// The vfio character devices: the container (IOMMU) device every vfio
// user opens and one device per IOMMU group.
const vfioContainerDevice = "/dev/vfio/vfio"

func vfioGroupDevice(group string) string { return "/dev/vfio/" + group }

// FindLink returns the name vf's netdev has among links: its own name, or
// the name of the interface with its MAC when it was renamed.
func FindLink(vf nodeconfig.VF, links []Link) (string, bool) {
	for _, l := range links {
		if l.Name == vf.Interface {
			return l.Name, true
		}
	}
	if vf.MAC == "" {
		return "", false
	}
	for _, l := range links {
		if strings.EqualFold(l.MAC, vf.MAC) {
			return l.Name, true
		}
	}
	return "", false
}
