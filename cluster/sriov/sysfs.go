package sriov

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// EnvSysfsRoot names the environment variable that moves the sysfs root
// (default /sys): a testing aid, so that a fake tree in the kernel's
// layout stands in for real hardware. Only HostFromEnv reads it.
const EnvSysfsRoot = "BERTH_SYSFS_ROOT"

// DefaultSysfsRoot is where the kernel's sysfs is mounted.
const DefaultSysfsRoot = "/sys"

// Errors of PF discovery, for callers that turn them into field errors.
var (
	ErrUnknownPF = errors.New("no such network interface")
	ErrNotSRIOV  = errors.New("not an SR-IOV physical function")
)

// PF is a physical function as sysfs describes it.
type PF struct {
	// Name is the PF's network interface on the host.
	Name string
	// PCIAddress is the PF's PCI address (0000:3b:00.0).
	PCIAddress string
	// Path is the PF's PCI device directory, symlinks resolved.
	Path string
	// TotalVFs is sriov_totalvfs: how many VFs the device can have.
	TotalVFs int
	// NumVFs is sriov_numvfs: how many VFs it has now.
	NumVFs int
}

// Device is one virtual function of a PF as sysfs describes it.
type Device struct {
	// PF is the physical function's interface name.
	PF string
	// Index is N of the PF's virtfnN link.
	Index int
	// PCIAddress is the VF's PCI address.
	PCIAddress string
	// Path is the VF's PCI device directory, symlinks resolved.
	Path string
	// Interface is the VF's netdev in the host's namespace, empty when
	// it has none there (bound to vfio-pci, or moved into a node).
	Interface string
	// MAC is the netdev's address, empty without a netdev.
	MAC string
	// Driver is the bound driver (iavf, mlx5_core, vfio-pci), empty when
	// none is bound.
	Driver string
	// NUMANode is numa_node, -1 when the host has none.
	NUMANode int
	// IOMMUGroup is the iommu_group link's basename, empty without IOMMU.
	IOMMUGroup string
}

// sysfs reads a sysfs tree rooted anywhere. Symlinks are resolved by
// hand rather than with filepath.EvalSymlinks: an absolute target
// (/sys/devices/...) must land in the same tree, so that a fake root
// built like the kernel's works unchanged.
type sysfs struct {
	root string
}

// resolve returns p (a path under root) with every symlink resolved,
// absolute link targets taken as relative to root.
func (s sysfs) resolve(p string) (string, error) {
	root := filepath.Clean(s.root)
	rel, err := filepath.Rel(root, filepath.Clean(p))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is outside the sysfs root %s", p, root)
	}
	pending := strings.Split(rel, "/")
	cur := root
	for links := 0; len(pending) > 0; {
		part := pending[0]
		pending = pending[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if cur != root {
				cur = filepath.Dir(cur)
			}
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("resolving %s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			// An absolute link into this tree, or /sys/devices/... of
			// the kernel's: the same place under this root.
			target = filepath.Clean(target)
			if t, ok := strings.CutPrefix(target, root+"/"); ok {
				target = t
			} else if t, ok := strings.CutPrefix(target, DefaultSysfsRoot+"/"); ok {
				target = t
			}
			cur = root
		} // else relative to the link's directory, cur
		pending = append(strings.Split(target, "/"), pending...)
	}
	return cur, nil
}

// linkBase is the basename of the symlink p points to ("" when p does
// not exist): the driver's name for <dev>/driver, the group for
// <dev>/iommu_group.
func linkBase(p string) string {
	target, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

func readInt(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	return n, nil
}

// pciAddressRE matches a PCI address as sysfs names devices:
// domain:bus:device.function.
var pciAddressRE = regexp.MustCompile(`^[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

// PF finds the physical function named name: class/net/<name> leads to
// the netdev, whose device link (or, failing that, the directory two up
// from devices/.../<pci>/net/<name>) is the PCI device, which must have
// sriov_totalvfs.
func (h Host) PF(name string) (PF, error) {
	s := sysfs{h.root()}
	classLink := filepath.Join(s.root, "class", "net", name)
	if _, err := os.Lstat(classLink); err != nil {
		return PF{}, fmt.Errorf("%s: %w (looked for %s)", name, ErrUnknownPF, classLink)
	}
	dev, err := s.resolve(filepath.Join(classLink, "device"))
	if err != nil {
		netdev, err2 := s.resolve(classLink)
		if err2 != nil {
			return PF{}, fmt.Errorf("%s: resolving %s: %w", name, classLink, err2)
		}
		dev = filepath.Dir(filepath.Dir(netdev))
	}
	pf := PF{Name: name, PCIAddress: filepath.Base(dev), Path: dev}
	if !pciAddressRE.MatchString(pf.PCIAddress) {
		return PF{}, fmt.Errorf("%s: %w: it is no PCI device (its device is %s)", name, ErrNotSRIOV, dev)
	}
	if pf.TotalVFs, err = readInt(filepath.Join(dev, "sriov_totalvfs")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return PF{}, fmt.Errorf("%s: %w: PCI device %s has no sriov_totalvfs", name, ErrNotSRIOV, pf.PCIAddress)
		}
		return PF{}, fmt.Errorf("%s: %w", name, err)
	}
	if pf.TotalVFs == 0 {
		return PF{}, fmt.Errorf("%s: %w: PCI device %s supports no VFs (sriov_totalvfs is 0)", name, ErrNotSRIOV, pf.PCIAddress)
	}
	if pf.NumVFs, err = readInt(filepath.Join(dev, "sriov_numvfs")); err != nil {
		return PF{}, fmt.Errorf("%s: %w", name, err)
	}
	return pf, nil
}

// VFs lists the PF's virtual functions (virtfnN links), by index.
func (h Host) VFs(pf PF) ([]Device, error) {
	s := sysfs{h.root()}
	links, err := filepath.Glob(filepath.Join(pf.Path, "virtfn*"))
	if err != nil {
		return nil, err
	}
	var vfs []Device
	for _, link := range links {
		index, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(link), "virtfn"))
		if err != nil {
			continue
		}
		dev, err := s.resolve(link)
		if err != nil {
			return nil, fmt.Errorf("reading VF %d of %s: %w", index, pf.Name, err)
		}
		vf, err := s.device(dev)
		if err != nil {
			return nil, fmt.Errorf("reading VF %d of %s: %w", index, pf.Name, err)
		}
		vf.PF, vf.Index = pf.Name, index
		vfs = append(vfs, vf)
	}
	sort.Slice(vfs, func(i, j int) bool { return vfs[i].Index < vfs[j].Index })
	return vfs, nil
}

// device reads a VF's PCI device directory.
func (s sysfs) device(dev string) (Device, error) {
	d := Device{PCIAddress: filepath.Base(dev), Path: dev, NUMANode: -1}
	d.Driver = linkBase(filepath.Join(dev, "driver"))
	d.IOMMUGroup = linkBase(filepath.Join(dev, "iommu_group"))
	if n, err := readInt(filepath.Join(dev, "numa_node")); err == nil {
		d.NUMANode = n
	}
	// net/ lists the netdevs of sysfs's network namespace only: a VF
	// moved into a node has none here.
	entries, err := os.ReadDir(filepath.Join(dev, "net"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return d, err
	}
	if len(entries) > 0 {
		d.Interface = entries[0].Name()
		if b, err := os.ReadFile(filepath.Join(dev, "net", d.Interface, "address")); err == nil {
			d.MAC = strings.TrimSpace(string(b))
		}
	}
	return d, nil
}

// DeviceByPCI reads one PCI device through bus/pci/devices/<pci>.
func (h Host) DeviceByPCI(pci string) (Device, error) {
	s := sysfs{h.root()}
	dev, err := s.resolve(filepath.Join(s.root, "bus", "pci", "devices", pci))
	if err != nil {
		return Device{}, fmt.Errorf("finding PCI device %s: %w", pci, err)
	}
	d, err := s.device(dev)
	if err != nil {
		return d, err
	}
	if physfn, err := s.resolve(filepath.Join(dev, "physfn")); err == nil {
		if nets, _ := os.ReadDir(filepath.Join(physfn, "net")); len(nets) > 0 {
			d.PF = nets[0].Name()
		}
		if links, _ := filepath.Glob(filepath.Join(physfn, "virtfn*")); links != nil {
			for _, l := range links {
				if target, err := s.resolve(l); err == nil && target == dev {
					d.Index, _ = strconv.Atoi(strings.TrimPrefix(filepath.Base(l), "virtfn"))
				}
			}
		}
	}
	return d, nil
}

// CreateVFs makes n VFs on pf by writing sriov_numvfs, only when the PF
// has none: the kernel refuses to change a non-zero count without going
// through 0, which would pull VFs from under whoever uses them.
func (h Host) CreateVFs(pf PF, n int) error {
	if n > pf.TotalVFs {
		return fmt.Errorf("creating %d VFs on %s: it supports at most %d (sriov_totalvfs)", n, pf.Name, pf.TotalVFs)
	}
	p := filepath.Join(pf.Path, "sriov_numvfs")
	current, err := readInt(p)
	if err != nil {
		return fmt.Errorf("creating VFs on %s: %w", pf.Name, err)
	}
	if current != 0 {
		return fmt.Errorf("creating VFs on %s: it already has %d (sriov_numvfs), which berth does not change", pf.Name, current)
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(n)), 0); err != nil {
		return fmt.Errorf("creating %d VFs on %s: %w", n, pf.Name, err)
	}
	return nil
}
