package cniplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/berth-dev/berth/control/sriov"
	"github.com/berth-dev/berth/control/sriov/internal/podresourcestest"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// call is one plugin run the fake saw.
type call struct {
	plugin, command, ifName, netns string
	conf                           map[string]any
}

// fakeExec stands in for host-device and host-local.
type fakeExec struct {
	mu    sync.Mutex
	calls []call
	// fail makes ADD for this interface name fail, failDel DEL.
	fail, failDel string
}

func (f *fakeExec) ExecPlugin(_ context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	c := call{plugin: filepath.Base(pluginPath), command: env["CNI_COMMAND"], ifName: env["CNI_IFNAME"], netns: env["CNI_NETNS"]}
	if err := json.Unmarshal(stdin, &c.conf); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if c.command == "DEL" && c.ifName == f.failDel && c.plugin == "host-device" {
		return nil, fmt.Errorf("failed to find %q in containerNS", c.ifName)
	}
	if c.command != "ADD" {
		return nil, nil
	}
	if c.ifName == f.fail {
		return nil, errors.New("host-device: failed")
	}
	r := map[string]any{
		"cniVersion": c.conf["cniVersion"],
		"interfaces": []map[string]any{{"name": c.ifName, "mac": "02:00:00:00:00:aa", "sandbox": c.netns}},
	}
	if c.conf["ipam"] != nil {
		r["ips"] = []map[string]any{{"address": "10.77.0.10/24", "interface": 0}}
	}
	return json.Marshal(r)
}

func (f *fakeExec) FindInPath(plugin string, _ []string) (string, error) {
	return "/opt/cni/bin/" + plugin, nil
}

func (f *fakeExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

func (f *fakeExec) take() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

const prev = `{"cniVersion":"1.0.0","interfaces":[{"name":"berth0"},{"name":"veth1"},{"name":"eth0","sandbox":"/var/run/netns/cni-1"}],"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":2}],"routes":[{"dst":"0.0.0.0/0"}]}`

type env struct {
	dir      string
	fake     *podresourcestest.Server
	exec     *fakeExec
	plugin   *Plugin
	out      *bytes.Buffer
	hasLinks map[string]bool
	// netns stands in for the pod's network namespace (a file).
	netns string
}

func newEnv(t *testing.T, vfs []nodeconfig.VF) *env {
	t.Helper()
	dir := t.TempDir()
	n := nodeconfig.Node{Name: "c-worker", Role: nodeconfig.RoleWorker, IP: "172.30.0.3", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/16", DNSServiceIP: "10.96.0.10", APIServerEndpoint: "https://172.30.0.2:6443", SRIOV: vfs}
	data, err := n.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, fake: podresourcestest.Start(t, dir), exec: &fakeExec{}, out: &bytes.Buffer{}, hasLinks: map[string]bool{}, netns: filepath.Join(dir, "netns")}
	if err := os.WriteFile(e.netns, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.plugin = &Plugin{
		Exec:       e.exec,
		PodDevices: sriov.PodDevices,
		Links: func() ([]sriov.Link, error) {
			return []sriov.Link{{Name: "lo"}, {Name: "eth0", MAC: "02:42:ac:1e:00:03"}, {Name: "ens1f0v0", MAC: "02:00:00:00:00:01"}, {Name: "eth7", MAC: "02:00:00:00:00:02"}, {Name: "ens2f0v0", MAC: "02:00:00:00:00:03"}}, nil
		},
		HasLink: func(_, ifname string) (bool, error) { return e.hasLinks[ifname], nil },
		Stdout:  e.out,
	}
	return e
}

func (e *env) args(t *testing.T, pod, netns string) *skel.CmdArgs {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"berth","type":"berth-sriov","nodeConfig":%q,"podResourcesSocket":%q,"dataDir":%q,"prevResult":%s}`,
		filepath.Join(e.dir, "node.json"), e.fake.Socket, filepath.Join(e.dir, "data"), prev)
	return &skel.CmdArgs{
		ContainerID: "c0ffee",
		Netns:       netns,
		IfName:      "eth0",
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + pod + ";K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=1234",
		Path:        "/opt/cni/bin",
		StdinData:   []byte(conf),
	}
}

var ipam = json.RawMessage(`{"type":"host-local","ranges":[[{"subnet":"10.77.0.0/24"}]]}`)

var testVFs = []nodeconfig.VF{
	{PF: "ens1f0", PCIAddress: "0000:3b:02.0", Interface: "ens1f0v0", MAC: "02:00:00:00:00:01", ResourceName: "berth.dev/ens1f0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: -1, IPAM: ipam},
	// Renamed in the node: found by its MAC.
	{PF: "ens1f0", PCIAddress: "0000:3b:02.1", Interface: "ens1f0v1", MAC: "02:00:00:00:00:02", ResourceName: "berth.dev/ens1f0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: -1, IPAM: ipam},
	{PF: "ens2f0", PCIAddress: "0000:5e:02.0", Interface: "ens2f0v0", MAC: "02:00:00:00:00:03", ResourceName: "berth.dev/ens2f0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: -1},
	{PF: "ens3f0", PCIAddress: "0000:af:02.0", ResourceName: "berth.dev/ens3f0", Mode: nodeconfig.SRIOVModeVFIO, NUMANode: -1, IOMMUGroup: "40"},
}

func TestAddMovesThePodsVFs(t *testing.T) {
	e := newEnv(t, testVFs)
	e.fake.SetPod("default", "dpdk",
		podresourcestest.Device{Container: "app", Resource: "berth.dev/ens2f0", IDs: []string{"0000:5e:02.0"}},
		podresourcestest.Device{Container: "app", Resource: "berth.dev/ens1f0", IDs: []string{"0000:3b:02.1", "0000:3b:02.0"}},
		podresourcestest.Device{Container: "app", Resource: "berth.dev/ens3f0", IDs: []string{"0000:af:02.0"}},
	)
	args := e.args(t, "dpdk", e.netns)
	if err := e.plugin.Add(args); err != nil {
		t.Fatal(err)
	}
	calls := e.exec.take()
	type want struct{ ifName, device string }
	var got []want
	for _, c := range calls {
		if c.plugin != "host-device" || c.command != "ADD" || c.netns != e.netns || c.conf["cniVersion"] != "1.0.0" || !strings.HasPrefix(fmt.Sprint(c.conf["name"]), "berth-sriov-ens") {
			t.Errorf("unexpected call %+v", c)
		}
		got = append(got, want{c.ifName, fmt.Sprint(c.conf["device"])})
	}
	// Ordered by resource, then PCI address; the vfio VF is not moved.
	if w := []want{{"net1", "ens1f0v0"}, {"net2", "eth7"}, {"net3", "ens2f0v0"}}; !reflect.DeepEqual(got, w) {
		t.Fatalf("host-device calls = %v, want %v", got, w)
	}
	if calls[0].conf["ipam"] == nil || calls[1].conf["ipam"] == nil || calls[2].conf["ipam"] != nil {
		t.Errorf("ipam blocks: %v / %v / %v; want the ens1f0 VFs' only", calls[0].conf["ipam"], calls[1].conf["ipam"], calls[2].conf["ipam"])
	}
	if sub := calls[0].conf["ipam"].(map[string]any)["ranges"]; !strings.Contains(fmt.Sprint(sub), "10.77.0.0/24") {
		t.Errorf("ipam = %v", calls[0].conf["ipam"])
	}

	var res current.Result
	if err := json.Unmarshal(e.out.Bytes(), &res); err != nil {
		t.Fatalf("result %s: %v", e.out, err)
	}
	var names []string
	for _, i := range res.Interfaces {
		names = append(names, i.Name)
	}
	if w := []string{"berth0", "veth1", "eth0", "net1", "net2", "net3"}; !reflect.DeepEqual(names, w) {
		t.Errorf("result interfaces = %v, want %v", names, w)
	}
	var ips []string
	for _, ip := range res.IPs {
		ips = append(ips, fmt.Sprintf("%s@%d", ip.Address.String(), *ip.Interface))
	}
	if w := []string{"10.244.1.5/24@2", "10.77.0.10/24@3", "10.77.0.10/24@4"}; !reflect.DeepEqual(ips, w) {
		t.Errorf("result IPs = %v, want %v", ips, w)
	}

	// DEL gives them back, last first, with the same configuration.
	e.hasLinks = map[string]bool{"net1": true, "net2": true, "net3": true}
	if err := e.plugin.Del(args); err != nil {
		t.Fatal(err)
	}
	var dels []string
	for _, c := range e.exec.take() {
		if c.command != "DEL" || c.plugin != "host-device" {
			t.Errorf("unexpected call %+v", c)
		}
		dels = append(dels, c.ifName+"="+fmt.Sprint(c.conf["device"]))
	}
	if w := []string{"net3=ens2f0v0", "net2=eth7", "net1=ens1f0v0"}; !reflect.DeepEqual(dels, w) {
		t.Errorf("DEL calls = %v, want %v", dels, w)
	}
	// Again: nothing left to do, even without the kubelet.
	e.fake.SetPod("default", "dpdk")
	if err := e.plugin.Del(args); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if c := e.exec.take(); len(c) != 0 {
		t.Errorf("second DEL ran %v", c)
	}
}

func TestPodsWithoutVFsAreUntouched(t *testing.T) {
	e := newEnv(t, testVFs)
	e.fake.SetPod("default", "web", podresourcestest.Device{Container: "app", Resource: "nvidia.com/gpu", IDs: []string{"GPU-0"}})
	for _, pod := range []string{"web", ""} {
		e.out.Reset()
		if err := e.plugin.Add(e.args(t, pod, e.netns)); err != nil {
			t.Fatalf("pod %q: %v", pod, err)
		}
		if c := e.exec.take(); len(c) != 0 {
			t.Errorf("pod %q: delegated %v", pod, c)
		}
		var got, want any
		json.Unmarshal(e.out.Bytes(), &got)
		json.Unmarshal([]byte(prev), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pod %q: result %s, want prevResult %s", pod, e.out, prev)
		}
	}
	if err := e.plugin.Del(e.args(t, "web", e.netns)); err != nil {
		t.Errorf("DEL of a pod without VFs: %v", err)
	}

	// A node whose VFs are all vfio asks the kubelet nothing.
	e = newEnv(t, testVFs[3:])
	e.plugin.PodDevices = func(context.Context, string, string, string, map[string]bool) (map[string][]string, error) {
		t.Error("asked the kubelet on a node without netdevice VFs")
		return nil, nil
	}
	if err := e.plugin.Add(e.args(t, "web", e.netns)); err != nil {
		t.Fatal(err)
	}
}

func TestAddFailsCleanly(t *testing.T) {
	e := newEnv(t, testVFs)
	e.fake.SetPod("default", "p", podresourcestest.Device{Container: "app", Resource: "berth.dev/ens1f0", IDs: []string{"0000:3b:02.0", "0000:3b:02.1"}})
	e.exec.fail = "net2"
	args := e.args(t, "p", e.netns)
	if err := e.plugin.Add(args); err == nil {
		t.Fatal("ADD succeeded although host-device failed")
	}
	var got []string
	for _, c := range e.exec.take() {
		got = append(got, c.command+" "+c.ifName)
	}
	if w := []string{"ADD net1", "ADD net2", "DEL net1"}; !reflect.DeepEqual(got, w) {
		t.Errorf("calls = %v, want %v (the first VF given back)", got, w)
	}
	if _, err := os.Stat(recordPath(&NetConf{DataDir: filepath.Join(e.dir, "data")}, args)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed ADD left its record: %v", err)
	}

	// The kubelet does not answer: ADD fails rather than start the pod
	// without its VFs.
	e.exec.fail = ""
	bad := e.args(t, "p", e.netns)
	bad.StdinData = bytes.Replace(bad.StdinData, []byte(e.fake.Socket), []byte(filepath.Join(e.dir, "gone.sock")), 1)
	if err := e.plugin.Add(bad); err == nil || !strings.Contains(err.Error(), "PodResources") {
		t.Errorf("ADD without the kubelet: %v", err)
	}
}

func TestDelWhenThePodNamespaceIsGone(t *testing.T) {
	e := newEnv(t, testVFs)
	e.fake.SetPod("default", "p", podresourcestest.Device{Container: "app", Resource: "berth.dev/ens1f0", IDs: []string{"0000:3b:02.0"}}, podresourcestest.Device{Container: "app", Resource: "berth.dev/ens2f0", IDs: []string{"0000:5e:02.0"}})
	args := e.args(t, "p", e.netns)
	if err := e.plugin.Add(args); err != nil {
		t.Fatal(err)
	}
	e.exec.take()
	// The namespace is gone (CNI_NETNS names nothing): only the address
	// of the VF with IPAM is released, by host-local itself.
	args.Netns = filepath.Join(e.dir, "no-such-netns")
	if err := e.plugin.Del(args); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range e.exec.take() {
		got = append(got, c.plugin+" "+c.command+" "+c.ifName)
	}
	if w := []string{"host-local DEL net1"}; !reflect.DeepEqual(got, w) {
		t.Errorf("calls = %v, want %v", got, w)
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, testVFs)
	e.fake.SetPod("default", "p", podresourcestest.Device{Container: "app", Resource: "berth.dev/ens2f0", IDs: []string{"0000:5e:02.0"}})
	args := e.args(t, "p", e.netns)
	if err := e.plugin.Add(args); err != nil {
		t.Fatal(err)
	}
	e.hasLinks["net1"] = true
	if err := e.plugin.Check(args); err != nil {
		t.Errorf("CHECK with net1 in the pod: %v", err)
	}
	e.hasLinks["net1"] = false
	if err := e.plugin.Check(args); err == nil {
		t.Error("CHECK passed with net1 gone")
	}
}

func TestDelToleratesAVFAlreadyGone(t *testing.T) {
	e := newEnv(t, testVFs)
	e.fake.SetPod("default", "p", podresourcestest.Device{Container: "app", Resource: "berth.dev/ens1f0", IDs: []string{"0000:3b:02.0", "0000:3b:02.1"}})
	args := e.args(t, "p", e.netns)
	if err := e.plugin.Add(args); err != nil {
		t.Fatal(err)
	}
	e.exec.take()
	// net2 is no longer in the pod: host-device fails to find it, DEL
	// still succeeds and releases its address.
	e.exec.failDel = "net2"
	e.hasLinks = map[string]bool{"net1": true}
	if err := e.plugin.Del(args); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	var got []string
	for _, c := range e.exec.take() {
		got = append(got, c.plugin+" "+c.command+" "+c.ifName)
	}
	if w := []string{"host-device DEL net2", "host-local DEL net2", "host-device DEL net1"}; !reflect.DeepEqual(got, w) {
		t.Errorf("calls = %v, want %v", got, w)
	}

	// A VF that host-device cannot move although it is in the pod: DEL
	// fails, so the runtime retries.
	if err := e.plugin.Add(args); err != nil {
		t.Fatal(err)
	}
	e.hasLinks = map[string]bool{"net1": true, "net2": true}
	if err := e.plugin.Del(args); err == nil {
		t.Error("DEL succeeded although net2 is stuck in the pod")
	}
	e.exec.failDel = ""
	if err := e.plugin.Del(args); err != nil {
		t.Errorf("retried DEL: %v", err)
	}
}
