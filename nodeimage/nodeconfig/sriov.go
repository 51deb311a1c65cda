package nodeconfig

import (
	"encoding/json"
	"fmt"
	"strings"
)

// SR-IOV modes: a VF's netdev moved into the node (and from there into a
// pod by the CNI chain), or a VF bound to vfio-pci whose /dev/vfio group
// is passed through for DPDK.
const (
	SRIOVModeNetdevice = "netdevice"
	SRIOVModeVFIO      = "vfio"
)

// SRIOVCNIPlugin is the name (CNI "type") of berth's chained CNI plugin
// that moves a pod's allocated VFs into it. It is in /opt/cni/bin of every
// node; the pod network configuration names it only on nodes with VFs.
const SRIOVCNIPlugin = "berth-sriov"

// LabelSRIOV is the node container label that records which VFs the host
// gave the node: FormatVFLabel of its VFs. berth reads it to find which
// VFs are taken (by any cluster), to re-attach them on start and to give
// them back on stop and delete.
const LabelSRIOV = "berth.dev/sriov-vfs"

// VF is one SR-IOV virtual function the host gave this node.
type VF struct {
	// PF is the physical function's interface name on the host.
	PF string `json:"pf"`
	// PCIAddress is the VF's PCI address (0000:3b:02.0): the device ID
	// the device plugin reports and PCIDEVICE_<RESOURCE> carries.
	PCIAddress string `json:"pciAddress"`
	// Interface is the VF's netdev name on the host, kept inside the node
	// (netdevice mode; empty for vfio).
	Interface string `json:"interface,omitempty"`
	// MAC is the netdev's hardware address when berth found it: how the
	// host finds the VF again wherever it moved (node or pod namespace).
	MAC string `json:"mac,omitempty"`
	// ResourceName is the extended resource pods request (berth.dev/<pf>).
	ResourceName string `json:"resourceName"`
	// Mode is SRIOVModeNetdevice or SRIOVModeVFIO.
	Mode string `json:"mode"`
	// NUMANode is the device's NUMA node, -1 when the host has none.
	NUMANode int `json:"numaNode"`
	// IOMMUGroup is the VF's IOMMU group (vfio: /dev/vfio/<group>).
	IOMMUGroup string `json:"iommuGroup,omitempty"`
	// IPAM, when set, is the CNI IPAM configuration (host-local) for the
	// pod interfaces of this VF's resource.
	IPAM json.RawMessage `json:"ipam,omitempty"`
}

// Validate checks the fields berth-node relies on.
func (v *VF) Validate() error {
	switch {
	case v.PCIAddress == "":
		return fmt.Errorf("sriov VF of %q: pciAddress is empty", v.PF)
	case v.ResourceName == "" || !strings.Contains(v.ResourceName, "/"):
		return fmt.Errorf("sriov VF %s: resourceName %q is not domain/name", v.PCIAddress, v.ResourceName)
	case v.Mode != SRIOVModeNetdevice && v.Mode != SRIOVModeVFIO:
		return fmt.Errorf("sriov VF %s: mode %q is neither %q nor %q", v.PCIAddress, v.Mode, SRIOVModeNetdevice, SRIOVModeVFIO)
	case v.Mode == SRIOVModeNetdevice && v.Interface == "":
		return fmt.Errorf("sriov VF %s: netdevice mode without an interface", v.PCIAddress)
	case v.Mode == SRIOVModeVFIO && v.IOMMUGroup == "":
		return fmt.Errorf("sriov VF %s: vfio mode without an IOMMU group", v.PCIAddress)
	}
	return nil
}

// FormatVFLabel encodes vfs for LabelSRIOV (JSON: labels are free text).
func FormatVFLabel(vfs []VF) (string, error) {
	if len(vfs) == 0 {
		return "", nil
	}
	b, err := json.Marshal(vfs)
	if err != nil {
		return "", fmt.Errorf("encoding SR-IOV label: %w", err)
	}
	return string(b), nil
}

// ParseVFLabel decodes a LabelSRIOV value ("" is no VFs).
func ParseVFLabel(s string) ([]VF, error) {
	if s == "" {
		return nil, nil
	}
	var vfs []VF
	if err := json.Unmarshal([]byte(s), &vfs); err != nil {
		return nil, fmt.Errorf("decoding label %s: %w", LabelSRIOV, err)
	}
	return vfs, nil
}
