package sriov

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// fakeKubelet is the kubelet's registration service on a unix socket:
// like the kubelet, it answers Register by connecting to the plugin's
// endpoint and following ListAndWatch.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	t    *testing.T
	dir  string
	srv  *grpc.Server
	regs chan *pluginapi.RegisterRequest
	// lists receives every ListAndWatch response.
	lists chan []*pluginapi.Device

	mu    sync.Mutex
	conns []*grpc.ClientConn
}

func startFakeKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	k := &fakeKubelet{t: t, dir: dir, regs: make(chan *pluginapi.RegisterRequest, 10), lists: make(chan []*pluginapi.Device, 100)}
	sock := filepath.Join(dir, "kubelet.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	k.srv = grpc.NewServer()
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go k.srv.Serve(lis)
	t.Cleanup(k.stop)
	return k
}

func (k *fakeKubelet) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	conn, err := grpc.NewClient("unix://"+filepath.Join(k.dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.conns = append(k.conns, conn)
	k.mu.Unlock()
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(context.Background(), &pluginapi.Empty{})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			k.lists <- resp.Devices
		}
	}()
	k.regs <- req
	return &pluginapi.Empty{}, nil
}

// stop is a kubelet going away: its server stops, its connections close.
func (k *fakeKubelet) stop() {
	k.srv.Stop()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		c.Close()
	}
	k.conns = nil
}

func (k *fakeKubelet) register(t *testing.T) *pluginapi.RegisterRequest {
	t.Helper()
	select {
	case r := <-k.regs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin did not register")
		return nil
	}
}

// nextList returns the next ListAndWatch response that satisfies ok.
func (k *fakeKubelet) nextList(t *testing.T, what string, ok func([]*pluginapi.Device) bool) []*pluginapi.Device {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last []*pluginapi.Device
	for {
		select {
		case devs := <-k.lists:
			if ok(devs) {
				return devs
			}
			last = devs
		case <-deadline:
			t.Fatalf("no device list with %s; last: %v", what, last)
		}
	}
}

func health(devs []*pluginapi.Device) map[string]string {
	out := map[string]string{}
	for _, d := range devs {
		out[d.ID] = d.Health
	}
	return out
}

var netdevVFs = []nodeconfig.VF{
	{PF: "ens1f0", PCIAddress: "0000:3b:02.1", Interface: "ens1f0v1", MAC: "02:00:00:00:00:02", ResourceName: "berth.dev/ens1f0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: -1},
	{PF: "ens1f0", PCIAddress: "0000:3b:02.0", Interface: "ens1f0v0", MAC: "02:00:00:00:00:01", ResourceName: "berth.dev/ens1f0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: 1},
}

// fakeNode is the node's interfaces and the pods' allocations.
type fakeNode struct {
	mu        sync.Mutex
	links     []Link
	allocated map[string]bool
	asked     int
}

func (f *fakeNode) checker(plugins ...*Plugin) *healthChecker {
	return &healthChecker{
		plugins: plugins,
		links: func() ([]Link, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]Link(nil), f.links...), nil
		},
		allocated: func(context.Context) (map[string]bool, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.asked++
			if f.allocated == nil {
				return nil, errors.New("kubelet not answering")
			}
			return f.allocated, nil
		},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func (f *fakeNode) set(links []Link, allocated map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links, f.allocated = links, allocated
}

func testEndpoint(dir string) endpoint {
	return endpoint{dir: dir, poll: 20 * time.Millisecond, retry: 20 * time.Millisecond, maxRetry: 100 * time.Millisecond}
}

func TestRegisterListAndWatch(t *testing.T) {
	dir := t.TempDir()
	kubelet := startFakeKubelet(t, dir)
	p := NewPlugin("berth.dev/ens1f0", netdevVFs, "/", testLog(t))
	node := &fakeNode{links: []Link{{"lo", ""}, {"ens1f0v0", "02:00:00:00:00:01"}, {"renamed", "02:00:00:00:00:02"}}}
	h := node.checker(p)
	h.check(context.Background())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.serve(ctx, testEndpoint(dir))

	reg := kubelet.register(t)
	if reg.ResourceName != "berth.dev/ens1f0" || reg.Version != pluginapi.Version || reg.Endpoint != "berth-sriov-berth.dev_ens1f0.sock" {
		t.Errorf("register request = %v", reg)
	}
	if !reg.GetOptions().GetGetPreferredAllocationAvailable() {
		t.Error("the plugin did not offer preferred allocations")
	}
	if _, err := os.Stat(filepath.Join(dir, reg.Endpoint)); err != nil {
		t.Errorf("the endpoint is not in the plugin directory: %v", err)
	}

	devs := kubelet.nextList(t, "both healthy", func(d []*pluginapi.Device) bool { return len(d) == 2 })
	if got := health(devs); got["0000:3b:02.0"] != pluginapi.Healthy || got["0000:3b:02.1"] != pluginapi.Healthy {
		t.Errorf("health = %v, want both healthy (one found by name, one by MAC)", got)
	}
	if devs[0].ID != "0000:3b:02.0" || devs[0].Topology.GetNodes()[0].GetID() != 1 || devs[1].Topology != nil {
		t.Errorf("devices = %v: want sorted by PCI address, NUMA 1 on the first, no topology on the second (-1)", devs)
	}
	if node.asked != 0 {
		t.Error("the PodResources API was asked while every VF was in the node")
	}

	// ens1f0v0 leaves the node and no pod has it: unhealthy.
	node.set([]Link{{"renamed", "02:00:00:00:00:02"}}, map[string]bool{})
	h.check(ctx)
	kubelet.nextList(t, "0000:3b:02.0 unhealthy", func(d []*pluginapi.Device) bool {
		return health(d)["0000:3b:02.0"] == pluginapi.Unhealthy && health(d)["0000:3b:02.1"] == pluginapi.Healthy
	})
	// It is in a pod: healthy again.
	node.set([]Link{{"renamed", "02:00:00:00:00:02"}}, map[string]bool{"0000:3b:02.0": true})
	h.check(ctx)
	kubelet.nextList(t, "0000:3b:02.0 healthy in its pod", func(d []*pluginapi.Device) bool {
		return health(d)["0000:3b:02.0"] == pluginapi.Healthy
	})
	// The kubelet stops answering: its last answer stands.
	node.set([]Link{{"renamed", "02:00:00:00:00:02"}}, nil)
	h.check(ctx)
	if got := health(mustDevices(p)); got["0000:3b:02.0"] != pluginapi.Healthy {
		t.Errorf("health without the kubelet = %v", got)
	}
}

func mustDevices(p *Plugin) []*pluginapi.Device {
	d, _ := p.devices()
	return d
}

func TestAllocatedKeepsHealthyWithoutPodResources(t *testing.T) {
	p := NewPlugin("berth.dev/ens1f0", netdevVFs, "/", testLog(t))
	node := &fakeNode{} // no links, kubelet not answering
	h := node.checker(p)
	if _, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"0000:3b:02.1"}}}}); err != nil {
		t.Fatal(err)
	}
	h.check(context.Background())
	got := health(mustDevices(p))
	if got["0000:3b:02.1"] != pluginapi.Healthy || got["0000:3b:02.0"] != pluginapi.Unhealthy {
		t.Errorf("health = %v: want the just-allocated VF healthy, the other not", got)
	}
}

func TestReregisterWhenKubeletRestarts(t *testing.T) {
	dir := t.TempDir()
	kubelet := startFakeKubelet(t, dir)
	p := NewPlugin("berth.dev/ens1f0", netdevVFs, "/", testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serve(ctx, testEndpoint(dir))
	}()
	kubelet.register(t)

	// A restarting kubelet deletes the plugin sockets and makes a new
	// kubelet.sock.
	kubelet.stop()
	for _, f := range []string{"kubelet.sock", p.SocketName()} {
		// (A stopped server may have unlinked its socket already.)
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	kubelet = startFakeKubelet(t, dir)
	kubelet.register(t)
	kubelet.nextList(t, "devices after re-registration", func(d []*pluginapi.Device) bool { return len(d) == 2 })

	// Only kubelet.sock replaced (the plugin socket survived): again.
	kubelet.stop()
	os.Remove(filepath.Join(dir, "kubelet.sock"))
	kubelet = startFakeKubelet(t, dir)
	kubelet.register(t)

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}

func TestAllocateVFIO(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev/vfio"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vfio", "41", "42"} {
		if err := os.WriteFile(filepath.Join(root, "dev/vfio", f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vfs := []nodeconfig.VF{
		{PF: "ens2f0", PCIAddress: "0000:5e:02.0", ResourceName: "example.com/dpdk-vf", Mode: nodeconfig.SRIOVModeVFIO, NUMANode: 0, IOMMUGroup: "41"},
		{PF: "ens2f0", PCIAddress: "0000:5e:02.1", ResourceName: "example.com/dpdk-vf", Mode: nodeconfig.SRIOVModeVFIO, NUMANode: 0, IOMMUGroup: "42"},
		{PF: "ens2f0", PCIAddress: "0000:5e:02.2", ResourceName: "example.com/dpdk-vf", Mode: nodeconfig.SRIOVModeVFIO, NUMANode: 0, IOMMUGroup: "43"},
	}
	p := NewPlugin("example.com/dpdk-vf", vfs, root, testLog(t))
	resp, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:5e:02.0", "0000:5e:02.1"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.ContainerResponses[0]
	if got := c.Envs["PCIDEVICE_EXAMPLE_COM_DPDK-VF"]; got != "0000:5e:02.0,0000:5e:02.1" {
		t.Errorf("PCIDEVICE env = %q (envs %v)", got, c.Envs)
	}
	if info := c.Envs["PCIDEVICE_EXAMPLE_COM_DPDK-VF_INFO"]; !strings.Contains(info, `"dev-mount":"/dev/vfio/42"`) || !strings.Contains(info, `"deviceID":"0000:5e:02.0"`) {
		t.Errorf("PCIDEVICE _INFO = %s", info)
	}
	var specs []string
	for _, d := range c.Devices {
		specs = append(specs, d.HostPath+":"+d.ContainerPath+":"+d.Permissions)
	}
	want := []string{
		filepath.Join(root, "dev/vfio/vfio") + ":/dev/vfio/vfio:rw",
		filepath.Join(root, "dev/vfio/41") + ":/dev/vfio/41:rw",
		filepath.Join(root, "dev/vfio/42") + ":/dev/vfio/42:rw",
	}
	if !reflect.DeepEqual(specs, want) {
		t.Errorf("device specs = %v, want %v", specs, want)
	}

	// Group 43 has no device: Allocate refuses it, health says so.
	if _, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"0000:5e:02.2"}}}}); err == nil {
		t.Error("a VF whose group device is missing was allocated")
	}
	if _, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"0000:99:00.0"}}}}); err == nil {
		t.Error("an unknown device was allocated")
	}
	h := (&fakeNode{}).checker(p)
	h.devRoot = root
	h.check(context.Background())
	if got := health(mustDevices(p)); got["0000:5e:02.0"] != pluginapi.Healthy || got["0000:5e:02.2"] != pluginapi.Unhealthy {
		t.Errorf("vfio health = %v", got)
	}
}

func TestAllocateNetdeviceEnv(t *testing.T) {
	p := NewPlugin("berth.dev/ens1f0", netdevVFs, "/", testLog(t))
	resp, err := p.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:3b:02.1"}}, {DevicesIds: []string{"0000:3b:02.0"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ContainerResponses) != 2 {
		t.Fatalf("%d container responses", len(resp.ContainerResponses))
	}
	for i, want := range []string{"0000:3b:02.1", "0000:3b:02.0"} {
		c := resp.ContainerResponses[i]
		if c.Envs["PCIDEVICE_BERTH_DEV_ENS1F0"] != want || len(c.Devices) != 0 {
			t.Errorf("container %d: envs %v devices %v", i, c.Envs, c.Devices)
		}
	}
}

func TestEnvName(t *testing.T) {
	for resource, want := range map[string]string{
		"berth.dev/ens1f0":      "PCIDEVICE_BERTH_DEV_ENS1F0",
		"intel.com/intel_sriov": "PCIDEVICE_INTEL_COM_INTEL_SRIOV",
		"openshift.io/mlx.vfs":  "PCIDEVICE_OPENSHIFT_IO_MLX_VFS",
	} {
		if got := EnvName(resource); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", resource, got, want)
		}
	}
}

func TestGetPreferredAllocation(t *testing.T) {
	var vfs []nodeconfig.VF
	add := func(pci string, numa int) {
		vfs = append(vfs, nodeconfig.VF{PCIAddress: pci, Interface: "if" + pci, ResourceName: "berth.dev/p", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: numa})
	}
	add("0000:01:00.0", 0)
	add("0000:01:00.1", 1)
	add("0000:01:00.2", 0)
	add("0000:01:00.3", 1)
	add("0000:01:00.4", 1)
	add("0000:01:00.5", -1)
	p := NewPlugin("berth.dev/p", vfs, "/", testLog(t))
	all := []string{"0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3", "0000:01:00.4", "0000:01:00.5"}
	for _, tc := range []struct {
		name            string
		available, must []string
		size            int32
		want            []string
	}{
		{"two fit on node 0 (best fit)", all, nil, 2, []string{"0000:01:00.0", "0000:01:00.2"}},
		{"three only fit on node 1", all, nil, 3, []string{"0000:01:00.1", "0000:01:00.3", "0000:01:00.4"}},
		{"the must-include device's node first", all, []string{"0000:01:00.3"}, 2, []string{"0000:01:00.3", "0000:01:00.1"}},
		{"more than a node has: fullest first, no NUMA last", all, nil, 5, []string{"0000:01:00.1", "0000:01:00.3", "0000:01:00.4", "0000:01:00.0", "0000:01:00.2"}},
		{"only what is available", []string{"0000:01:00.5", "0000:01:00.4"}, nil, 2, []string{"0000:01:00.4", "0000:01:00.5"}},
	} {
		resp, err := p.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
			{AvailableDeviceIDs: tc.available, MustIncludeDeviceIDs: tc.must, AllocationSize: tc.size},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.ContainerResponses[0].DeviceIDs; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	opts, _ := p.GetDevicePluginOptions(context.Background(), &pluginapi.Empty{})
	if !opts.GetPreferredAllocationAvailable {
		t.Error("GetDevicePluginOptions does not offer preferred allocations")
	}
}
