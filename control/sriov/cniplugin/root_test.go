package cniplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/control/sriov/internal/podresourcestest"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// buildPlugins builds the upstream CNI plugins the node image has into a
// temporary directory.
func buildPlugins(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		pkg := "github.com/containernetworking/plugins/plugins/" + n + "@" + versions.CNIPlugins
		cmd := exec.Command("go", "install", pkg)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

// TestHostDeviceForReal moves a veth standing in for a VF from a "node"
// network namespace into a "pod" one and back, through the real
// host-device and host-local plugins.
func TestHostDeviceForReal(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root (network namespaces) and builds the upstream plugins")
	}
	bin := buildPlugins(t, "main/host-device", "ipam/host-local")

	// Everything below runs in the node namespace on this thread; the
	// plugins it starts inherit it.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		orig.Close()
	}()
	suffix := fmt.Sprint(os.Getpid())
	podName, nodeName := "berth-sriov-test-pod-"+suffix, "berth-sriov-test-node-"+suffix
	podNS, err := netns.NewNamed(podName)
	if err != nil {
		t.Skipf("cannot create network namespaces: %v", err)
	}
	defer netns.DeleteNamed(podName)
	defer podNS.Close()
	nodeNS, err := netns.NewNamed(nodeName)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.DeleteNamed(nodeName)
	defer nodeNS.Close()

	vf := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sntvf0", MTU: 1400}, PeerName: "sntvf0p"}
	if err := netlink.LinkAdd(vf); err != nil {
		t.Fatal(err)
	}
	link, err := netlink.LinkByName("sntvf0")
	if err != nil {
		t.Fatal(err)
	}
	mac := link.Attrs().HardwareAddr.String()

	dir := t.TempDir()
	ipamDir := filepath.Join(dir, "ipam")
	ipam := json.RawMessage(fmt.Sprintf(`{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.99.0.0/24","rangeStart":"10.99.0.10","rangeEnd":"10.99.0.20"}]]}`, ipamDir))
	vfs := []nodeconfig.VF{{PF: "sntpf", PCIAddress: "0000:00:00.1", Interface: "sntvf0", MAC: mac, ResourceName: "berth.dev/sntpf", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: -1, IPAM: ipam}}
	e := newEnv(t, vfs)
	e.fake.SetPod("default", "p", podresourcestest.Device{Container: "app", Resource: "berth.dev/sntpf", IDs: []string{"0000:00:00.1"}})
	p := New()
	out := &bytes.Buffer{}
	p.Stdout = out

	args := e.args(t, "p", "/var/run/netns/"+podName)
	args.Path = bin
	if err := p.Add(args); err != nil {
		t.Fatal(err)
	}
	var res current.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	last := res.Interfaces[len(res.Interfaces)-1]
	if last.Name != "net1" || last.Mac != mac {
		t.Errorf("result's last interface = %+v, want net1 with %s", last, mac)
	}
	if n := len(res.IPs); n != 2 || res.IPs[1].Address.String() != "10.99.0.10/24" || *res.IPs[1].Interface != len(res.Interfaces)-1 {
		t.Errorf("result IPs = %v", res.IPs)
	}
	if _, err := netlink.LinkByName("sntvf0"); err == nil {
		t.Error("the VF is still in the node namespace")
	}
	h, err := netlink.NewHandleAt(podNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	inPod, err := h.LinkByName("net1")
	if err != nil {
		t.Fatalf("net1 in the pod: %v", err)
	}
	if inPod.Attrs().HardwareAddr.String() != mac || inPod.Attrs().MTU != 1400 {
		t.Errorf("net1 in the pod: MAC %s MTU %d, want %s 1400", inPod.Attrs().HardwareAddr, inPod.Attrs().MTU, mac)
	}
	addrs, _ := h.AddrList(inPod, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.99.0.10/24" {
		t.Errorf("net1's addresses: %v", addrs)
	}
	if err := p.Check(args); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	reservation := filepath.Join(ipamDir, "berth-sriov-sntpf", "10.99.0.10")
	if _, err := os.Stat(reservation); err != nil {
		t.Errorf("host-local's reservation: %v", err)
	}

	if err := p.Del(args); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("sntvf0"); err != nil {
		t.Errorf("the VF did not come back to the node: %v", err)
	}
	if _, err := h.LinkByName("net1"); err == nil {
		t.Error("net1 is still in the pod")
	}
	if _, err := os.Stat(reservation); !os.IsNotExist(err) {
		t.Errorf("the address was not released: %v", err)
	}
	if err := p.Del(args); err != nil {
		t.Errorf("second DEL: %v", err)
	}
}
