// Package sriovtest builds fake sysfs trees in the kernel's layout for
// tests of SR-IOV discovery: point sriov.Host.SysfsRoot (or
// BERTH_SYSFS_ROOT) at Tree.Root. The netdev names and MACs are
// parameters, so that real interfaces (veths) can stand in for VFs: the
// tree says which PCI device they belong to, netlink finds them by name
// and MAC.
//
// The layout, as the kernel makes it (every link relative):
//
//	devices/pci0000:00/<pci>/                  a PCI device
//	    sriov_totalvfs, sriov_numvfs           PFs only
//	    virtfnN -> ../<vf-pci>                 PFs only
//	    physfn -> ../<pf-pci>                  VFs only
//	    numa_node
//	    driver -> ../../../bus/pci/drivers/<driver>
//	    iommu_group -> ../../../kernel/iommu_groups/<group>
//	    net/<ifname>/address
//	    net/<ifname>/device -> ../../../<pci>
//	devices/virtual/net/<ifname>/address      a netdev without a device
//	class/net/<ifname> -> ../../devices/.../net/<ifname>
//	bus/pci/devices/<pci> -> ../../../devices/pci0000:00/<pci>
package sriovtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Tree is a fake sysfs under Root.
type Tree struct {
	Root string
	pfs  int
}

// New starts an empty tree under root (which must exist, e.g. a
// t.TempDir()).
func New(root string) (*Tree, error) {
	t := &Tree{Root: root}
	for _, d := range []string{"class/net", "bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups", "devices/pci0000:00", "devices/virtual/net"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// PF describes a physical function to add.
type PF struct {
	// Name is the PF's netdev.
	Name string
	// MAC of the PF's netdev (default: made up from the PF's number).
	MAC string
	// TotalVFs is sriov_totalvfs (default: len(VFs), at least 1).
	TotalVFs int
	// NoSRIOV leaves out sriov_totalvfs and sriov_numvfs: a PCI NIC
	// without SR-IOV.
	NoSRIOV bool
	// Driver of the PF ("" none).
	Driver string
	// NUMANode of the PF (its VFs' default).
	NUMANode int
	// VFs are its virtual functions, virtfn0, virtfn1, ...; sriov_numvfs
	// is their number.
	VFs []VF
}

// VF describes one virtual function.
type VF struct {
	// Netdev is its network interface ("" none: bound to vfio-pci).
	Netdev string
	// MAC of Netdev (default: made up from the PF's and VF's numbers).
	MAC string
	// Driver bound ("" none), e.g. iavf or vfio-pci.
	Driver string
	// NUMANode, written to numa_node unless NoNUMANode.
	NUMANode   int
	NoNUMANode bool
	// IOMMUGroup ("" none).
	IOMMUGroup string
}

// Added is what AddPF made: the PCI addresses and MACs, defaults filled.
type Added struct {
	PCIAddress string
	VFs        []AddedVF
}

// AddedVF is one VF AddPF made.
type AddedVF struct {
	PCIAddress string
	MAC        string
}

// AddPF adds a PF and its VFs, on a PCI bus of its own.
func (t *Tree) AddPF(pf PF) (Added, error) {
	t.pfs++
	bus := 0x3a + t.pfs
	pciAddr := fmt.Sprintf("0000:%02x:00.0", bus)
	if pf.MAC == "" {
		pf.MAC = fmt.Sprintf("02:be:%02x:00:00:01", bus)
	}
	if err := t.addDevice(pciAddr, pf.Name, pf.MAC, pf.Driver, strconv.Itoa(pf.NUMANode), ""); err != nil {
		return Added{}, err
	}
	dev := t.devicePath(pciAddr)
	added := Added{PCIAddress: pciAddr}
	if !pf.NoSRIOV {
		total := pf.TotalVFs
		if total == 0 {
			total = max(len(pf.VFs), 1)
		}
		if err := write(filepath.Join(dev, "sriov_totalvfs"), strconv.Itoa(total)); err != nil {
			return Added{}, err
		}
		if err := write(filepath.Join(dev, "sriov_numvfs"), strconv.Itoa(len(pf.VFs))); err != nil {
			return Added{}, err
		}
	}
	for i, vf := range pf.VFs {
		// VFs start at device 02, eight functions a device.
		vfAddr := fmt.Sprintf("0000:%02x:%02x.%d", bus, 2+i/8, i%8)
		if vf.Netdev != "" && vf.MAC == "" {
			vf.MAC = fmt.Sprintf("02:be:%02x:00:01:%02x", bus, i)
		}
		numa := strconv.Itoa(vf.NUMANode)
		if vf.NoNUMANode {
			numa = ""
		}
		if err := t.addDevice(vfAddr, vf.Netdev, vf.MAC, vf.Driver, numa, vf.IOMMUGroup); err != nil {
			return Added{}, err
		}
		if err := os.Symlink("../"+vfAddr, filepath.Join(dev, fmt.Sprintf("virtfn%d", i))); err != nil {
			return Added{}, err
		}
		if err := os.Symlink("../"+pciAddr, filepath.Join(t.devicePath(vfAddr), "physfn")); err != nil {
			return Added{}, err
		}
		added.VFs = append(added.VFs, AddedVF{PCIAddress: vfAddr, MAC: vf.MAC})
	}
	return added, nil
}

// AddVirtualNetdev adds a netdev without a device (a bridge, a veth).
func (t *Tree) AddVirtualNetdev(name, mac string) error {
	dir := filepath.Join(t.Root, "devices/virtual/net", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := write(filepath.Join(dir, "address"), mac); err != nil {
		return err
	}
	return os.Symlink("../../devices/virtual/net/"+name, filepath.Join(t.Root, "class/net", name))
}

func (t *Tree) devicePath(pci string) string {
	return filepath.Join(t.Root, "devices/pci0000:00", pci)
}

// addDevice makes a PCI device directory with its links.
func (t *Tree) addDevice(pci, netdev, mac, driver, numa, group string) error {
	dev := t.devicePath(pci)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	if err := os.Symlink("../../../devices/pci0000:00/"+pci, filepath.Join(t.Root, "bus/pci/devices", pci)); err != nil {
		return err
	}
	if numa != "" {
		if err := write(filepath.Join(dev, "numa_node"), numa); err != nil {
			return err
		}
	}
	if driver != "" {
		if err := os.MkdirAll(filepath.Join(t.Root, "bus/pci/drivers", driver), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("../../../bus/pci/drivers/"+driver, filepath.Join(dev, "driver")); err != nil {
			return err
		}
	}
	if group != "" {
		if err := os.MkdirAll(filepath.Join(t.Root, "kernel/iommu_groups", group), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("../../../kernel/iommu_groups/"+group, filepath.Join(dev, "iommu_group")); err != nil {
			return err
		}
	}
	if netdev == "" {
		return nil
	}
	nd := filepath.Join(dev, "net", netdev)
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return err
	}
	if err := write(filepath.Join(nd, "address"), mac); err != nil {
		return err
	}
	if err := os.Symlink("../../../"+pci, filepath.Join(nd, "device")); err != nil {
		return err
	}
	return os.Symlink("../../devices/pci0000:00/"+pci+"/net/"+netdev, filepath.Join(t.Root, "class/net", netdev))
}

func write(p, content string) error {
	return os.WriteFile(p, []byte(content+"\n"), 0o644)
}
