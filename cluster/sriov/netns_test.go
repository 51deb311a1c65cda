package sriov

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/sriov/sriovtest"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// startNamespaces starts a "node": a shell in a network namespace of its
// own, with a child (a "pod") in another one. It returns their pids;
// both die, and their namespaces with them, when the test ends.
func startNamespaces(t *testing.T) (node, pod int) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not found")
	}
	cmd := exec.Command("unshare", "--net", "sh", "-c", "unshare --net sleep 600 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	node = cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tree, err := processTree()
		if err != nil {
			t.Fatal(err)
		}
		if kids := tree[node]; len(kids) == 1 {
			a, errA := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", node))
			b, errB := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", kids[0]))
			host, _ := os.Readlink("/proc/self/ns/net")
			if errA == nil && errB == nil && a != b && a != host {
				return node, kids[0]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the namespaces did not come up")
	return 0, 0
}

func handleOf(t *testing.T, pid int) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestAttachAndReclaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ctx := context.Background()
	node, pod := startNamespaces(t)

	// A veth pair stands in for a VF: one end is the "VF", the peer
	// stays on the host.
	name := fmt.Sprintf("shvf%d", os.Getpid()%100000)
	peer := fmt.Sprintf("shpr%d", os.Getpid()%100000)
	mac, _ := net.ParseMAC(fmt.Sprintf("02:5e:00:%02x:%02x:01", os.Getpid()>>8&0xff, os.Getpid()&0xff))
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Deleting either end deletes both; an end that is in a
		// namespace of the test dies with it.
		for _, n := range []string{name, peer} {
			if l, err := netlink.LinkByName(n); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
	})
	vf := nodeconfig.VF{PF: "shpf0", PCIAddress: "0000:99:02.0", Interface: name, MAC: mac.String(),
		ResourceName: "berth.dev/shpf0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: -1}
	vfs := []nodeconfig.VF{vf, {PF: "shpf0", PCIAddress: "0000:99:02.1", Mode: nodeconfig.SRIOVModeVFIO, IOMMUGroup: "7", ResourceName: "berth.dev/x"}}

	inNode := handleOf(t, node)
	inPod := handleOf(t, pod)

	if err := Attach(ctx, node, vfs); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Error("after Attach the VF is still in the host's namespace")
	}
	l, err := inNode.LinkByName(name)
	if err != nil {
		t.Fatalf("after Attach the VF is not in the node: %v", err)
	}
	if l.Attrs().HardwareAddr.String() != mac.String() {
		t.Errorf("in the node the VF has MAC %s, want %s", l.Attrs().HardwareAddr, mac)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		t.Error("the VF is not up in the node")
	}
	// Again (berth start on a running node): nothing to do, no error.
	if err := Attach(ctx, node, vfs); err != nil {
		t.Errorf("second Attach: %v", err)
	}
	if err := Attach(ctx, os.Getpid(), vfs); err == nil {
		t.Error("Attach into the host's own namespace was not refused")
	}

	// What the CNI plugin does: the VF goes into a pod as net1.
	if err := inNode.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := inNode.LinkSetName(l, "net1"); err != nil {
		t.Fatal(err)
	}
	if err := inNode.LinkSetNsPid(l, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := inPod.LinkByName("net1"); err != nil {
		t.Fatalf("moving the VF into the pod: %v", err)
	}

	if err := Reclaim(ctx, []int{node}, vfs); err != nil {
		t.Fatal(err)
	}
	back, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("after Reclaim the VF is not back on the host as %s: %v", name, err)
	}
	if back.Attrs().HardwareAddr.String() != mac.String() {
		t.Errorf("back on the host the VF has MAC %s, want %s", back.Attrs().HardwareAddr, mac)
	}
	if _, err := inPod.LinkByName("net1"); err == nil {
		t.Error("after Reclaim the pod still has net1")
	}

	// The kernel gives a VF back under another name; Reclaim renames it.
	if err := netlink.LinkSetName(back, "shtmp"+name[4:]); err != nil {
		t.Fatal(err)
	}
	if err := Reclaim(ctx, []int{node}, vfs); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err != nil {
		t.Errorf("Reclaim did not rename the VF back: %v", err)
	}

	// A VF nowhere to be found is an error naming it.
	gone := vf
	gone.Interface, gone.MAC = "shnone0", "02:5e:ff:ff:ff:ff"
	if err := Reclaim(ctx, []int{node}, []nodeconfig.VF{gone}); err == nil {
		t.Error("Reclaim of a VF that exists nowhere did not fail")
	}
}

// The way the end-to-end test uses this package: a fake sysfs maps a PF
// to real veths as its VFs; Plan finds them (with the host's real default
// route), Attach and Reclaim move the real interfaces.
func TestFakeTreeWithRealVeths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ctx := context.Background()
	node, _ := startNamespaces(t)
	var vfs []sriovtest.VF
	for i := range 2 {
		name := fmt.Sprintf("shv%d_%d", i, os.Getpid()%10000)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: fmt.Sprintf("shp%d_%d", i, os.Getpid()%10000)}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if l, err := netlink.LinkByName(name); err == nil {
				_ = netlink.LinkDel(l)
			}
		})
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		vfs = append(vfs, sriovtest.VF{Netdev: name, MAC: l.Attrs().HardwareAddr.String(), Driver: "veth"})
	}
	tree, err := sriovtest.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.AddPF(sriovtest.PF{Name: "shpf0", VFs: vfs}); err != nil {
		t.Fatal(err)
	}
	c := cluster(t, []config.SRIOV{{PF: "shpf0", VFs: 2}})
	plan, err := Host{SysfsRoot: tree.Root}.Plan(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := plan[1]
	if len(got) != 2 || got[0].Interface != vfs[0].Netdev || got[1].MAC != vfs[1].MAC {
		t.Fatalf("plan %+v, want the two veths", got)
	}
	if err := Attach(ctx, node, got); err != nil {
		t.Fatal(err)
	}
	inNode := handleOf(t, node)
	for _, vf := range got {
		if _, err := inNode.LinkByName(vf.Interface); err != nil {
			t.Errorf("%s is not in the node: %v", vf.Interface, err)
		}
	}
	if err := Reclaim(ctx, []int{node}, got); err != nil {
		t.Fatal(err)
	}
	for _, vf := range got {
		if _, err := netlink.LinkByName(vf.Interface); err != nil {
			t.Errorf("%s is not back on the host: %v", vf.Interface, err)
		}
	}
}

// With the nodes stopped (no pids), Reclaim still renames a VF the kernel
// gave back under another name.
func TestReclaimWithoutRunningNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	name := fmt.Sprintf("shrn%d", os.Getpid()%100000)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "shdev" + name[4:]}, PeerName: "shpe" + name[4:]}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{name, veth.Name} {
			if l, err := netlink.LinkByName(n); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
	})
	l, err := netlink.LinkByName(veth.Name)
	if err != nil {
		t.Fatal(err)
	}
	vf := nodeconfig.VF{PF: "shpf0", PCIAddress: "0000:99:03.0", Interface: name, MAC: l.Attrs().HardwareAddr.String(), Mode: nodeconfig.SRIOVModeNetdevice}
	if err := Reclaim(context.Background(), []int{0}, []nodeconfig.VF{vf}); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err != nil {
		t.Errorf("not renamed back to %s: %v", name, err)
	}
}
