package sriov

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cluster/sriov/sriovtest"
)

// newTree is a fake sysfs with:
//
//	ens1f0: 4 VFs; 0-2 netdevs ens1f0v0-2 (iavf, NUMA 1), 3 vfio-pci (group 45)
//	ens2f0: a PCI NIC without SR-IOV
//	ens3f0: SR-IOV capable (8), no VFs yet
//	br0: a virtual netdev
func newTree(t *testing.T) (*sriovtest.Tree, sriovtest.Added) {
	t.Helper()
	tree, err := sriovtest.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ens1f0, err := tree.AddPF(sriovtest.PF{Name: "ens1f0", Driver: "ice", TotalVFs: 8, NUMANode: 1, VFs: []sriovtest.VF{
		{Netdev: "ens1f0v0", Driver: "iavf", NUMANode: 1, IOMMUGroup: "42"},
		{Netdev: "ens1f0v1", Driver: "iavf", NUMANode: 1, IOMMUGroup: "43", MAC: "02:00:00:00:00:aa"},
		{Netdev: "ens1f0v2", Driver: "iavf", NoNUMANode: true, IOMMUGroup: "44"},
		{Driver: "vfio-pci", NUMANode: 1, IOMMUGroup: "45"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.AddPF(sriovtest.PF{Name: "ens2f0", NoSRIOV: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.AddPF(sriovtest.PF{Name: "ens3f0", TotalVFs: 8}); err != nil {
		t.Fatal(err)
	}
	if err := tree.AddVirtualNetdev("br0", "02:42:00:00:00:01"); err != nil {
		t.Fatal(err)
	}
	return tree, ens1f0
}

func TestDiscovery(t *testing.T) {
	tree, added := newTree(t)
	h := Host{SysfsRoot: tree.Root}
	pf, err := h.PF("ens1f0")
	if err != nil {
		t.Fatal(err)
	}
	if pf.PCIAddress != added.PCIAddress || pf.TotalVFs != 8 || pf.NumVFs != 4 {
		t.Errorf("PF %+v, want %s with 8 total, 4 VFs", pf, added.PCIAddress)
	}
	vfs, err := h.VFs(pf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{PF: "ens1f0", Index: 0, PCIAddress: added.VFs[0].PCIAddress, Interface: "ens1f0v0", MAC: added.VFs[0].MAC, Driver: "iavf", NUMANode: 1, IOMMUGroup: "42"},
		{PF: "ens1f0", Index: 1, PCIAddress: added.VFs[1].PCIAddress, Interface: "ens1f0v1", MAC: "02:00:00:00:00:aa", Driver: "iavf", NUMANode: 1, IOMMUGroup: "43"},
		{PF: "ens1f0", Index: 2, PCIAddress: added.VFs[2].PCIAddress, Interface: "ens1f0v2", MAC: added.VFs[2].MAC, Driver: "iavf", NUMANode: -1, IOMMUGroup: "44"},
		{PF: "ens1f0", Index: 3, PCIAddress: added.VFs[3].PCIAddress, Driver: "vfio-pci", NUMANode: 1, IOMMUGroup: "45"},
	}
	if len(vfs) != len(want) {
		t.Fatalf("VFs %+v, want %d", vfs, len(want))
	}
	for i := range want {
		got := vfs[i]
		got.Path = ""
		if got != want[i] {
			t.Errorf("VF %d:\n got %+v\nwant %+v", i, got, want[i])
		}
		if !strings.HasPrefix(vfs[i].Path, tree.Root+"/devices/") {
			t.Errorf("VF %d path %s is not resolved into the tree's devices", i, vfs[i].Path)
		}
	}
	if added.VFs[0].MAC == "" || added.VFs[0].MAC == added.VFs[2].MAC {
		t.Errorf("made-up MACs %q, %q: want distinct ones", added.VFs[0].MAC, added.VFs[2].MAC)
	}

	d, err := h.DeviceByPCI(added.VFs[1].PCIAddress)
	if err != nil {
		t.Fatal(err)
	}
	if d.PF != "ens1f0" || d.Index != 1 || d.Interface != "ens1f0v1" {
		t.Errorf("device by PCI address: %+v, want VF 1 of ens1f0", d)
	}
}

func TestDiscoveryErrors(t *testing.T) {
	tree, _ := newTree(t)
	h := Host{SysfsRoot: tree.Root}
	for _, tc := range []struct {
		pf   string
		want error
	}{
		{"nosuch0", ErrUnknownPF},
		{"ens2f0", ErrNotSRIOV},
		{"br0", ErrNotSRIOV},
	} {
		if _, err := h.PF(tc.pf); !errors.Is(err, tc.want) {
			t.Errorf("PF(%s): %v, want %v", tc.pf, err, tc.want)
		}
	}
	pf, err := h.PF("ens3f0")
	if err != nil || pf.NumVFs != 0 || pf.TotalVFs != 8 {
		t.Errorf("ens3f0: %+v, %v: want 0 of 8 VFs", pf, err)
	}
}

// Absolute symlinks, as a tree copied from a real /sys or built by a
// script with absolute paths may have them, resolve inside the tree.
func TestAbsoluteLinksStayInTheTree(t *testing.T) {
	tree, added := newTree(t)
	link := filepath.Join(tree.Root, "class/net/ens1f0")
	for _, target := range []string{
		"/sys/devices/pci0000:00/" + added.PCIAddress + "/net/ens1f0",
		tree.Root + "/devices/pci0000:00/" + added.PCIAddress + "/net/ens1f0",
	} {
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		pf, err := Host{SysfsRoot: tree.Root}.PF("ens1f0")
		if err != nil || pf.PCIAddress != added.PCIAddress {
			t.Errorf("link to %s: %+v, %v", target, pf, err)
		}
	}
}

func TestCreateVFs(t *testing.T) {
	tree, _ := newTree(t)
	h := Host{SysfsRoot: tree.Root}
	pf, err := h.PF("ens3f0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CreateVFs(pf, 9); err == nil || !strings.Contains(err.Error(), "at most 8") {
		t.Errorf("9 VFs on a PF of 8: %v", err)
	}
	if err := h.CreateVFs(pf, 4); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(pf.Path, "sriov_numvfs"))
	if err != nil || strings.TrimSpace(string(b)) != "4" {
		t.Errorf("sriov_numvfs %q, %v: want 4", b, err)
	}
	// Never changed once the PF has VFs.
	if err := h.CreateVFs(pf, 2); err == nil || !strings.Contains(err.Error(), "already has 4") {
		t.Errorf("second CreateVFs: %v, want a refusal", err)
	}
	b, _ = os.ReadFile(filepath.Join(pf.Path, "sriov_numvfs"))
	if strings.TrimSpace(string(b)) != "4" {
		t.Errorf("sriov_numvfs changed to %q", b)
	}
}
