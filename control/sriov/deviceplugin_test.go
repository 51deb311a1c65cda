package sriov

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// fakeKubelet is the kubelet's registration service on a unix socket.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	mu   sync.Mutex
	reqs []*pluginapi.RegisterRequest
	got  chan *pluginapi.RegisterRequest
	srv  *grpc.Server
}

func (k *fakeKubelet) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.mu.Lock()
	k.reqs = append(k.reqs, r)
	k.mu.Unlock()
	k.got <- r
	return &pluginapi.Empty{}, nil
}

func startKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	sock := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{got: make(chan *pluginapi.RegisterRequest, 4), srv: grpc.NewServer()}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go k.srv.Serve(lis)
	t.Cleanup(k.srv.Stop)
	return k
}

type healthFunc func(nodeconfig.VF) bool

func (f healthFunc) Healthy(vf nodeconfig.VF) bool { return f(vf) }

func waitRegister(t *testing.T, k *fakeKubelet) *pluginapi.RegisterRequest {
	t.Helper()
	select {
	case r := <-k.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin did not register")
		return nil
	}
}

func TestPluginRegistersServesAndReRegisters(t *testing.T) {
	dir := t.TempDir()
	k := startKubelet(t, dir)
	var mu sync.Mutex
	present := map[string]bool{"0000:3b:02.0": true, "0000:3b:02.1": false}
	changed := make(chan struct{}, 1)
	p := &Plugin{
		Resource: "berth.dev/ens1f0",
		VFs: []nodeconfig.VF{
			{PF: "ens1f0", PCIAddress: "0000:3b:02.0", Interface: "v0", ResourceName: "berth.dev/ens1f0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: 0},
			{PF: "ens1f0", PCIAddress: "0000:3b:02.1", Interface: "v1", ResourceName: "berth.dev/ens1f0", Mode: nodeconfig.SRIOVModeNetdevice, NUMANode: -1},
		},
		Dir:      dir,
		Interval: time.Hour,
		Changed:  changed,
		Health: healthFunc(func(vf nodeconfig.VF) bool {
			mu.Lock()
			defer mu.Unlock()
			return present[vf.PCIAddress]
		}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	r := waitRegister(t, k)
	if r.ResourceName != "berth.dev/ens1f0" || r.Version != pluginapi.Version || r.Endpoint != "berth-berth-dev-ens1f0.sock" || !r.Options.GetPreferredAllocationAvailable {
		t.Fatalf("register request %+v", r)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, r.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pluginapi.NewDevicePluginClient(conn)
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if h := healthOf(first); h["0000:3b:02.0"] != pluginapi.Healthy || h["0000:3b:02.1"] != pluginapi.Unhealthy {
		t.Fatalf("first list: %v", h)
	}
	if first.Devices[0].Topology == nil || first.Devices[0].Topology.Nodes[0].ID != 0 || first.Devices[1].Topology != nil {
		t.Errorf("topology: %v / %v", first.Devices[0].Topology, first.Devices[1].Topology)
	}
	// The second VF shows up (a link event): the kubelet hears at once.
	mu.Lock()
	present["0000:3b:02.1"] = true
	mu.Unlock()
	changed <- struct{}{}
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if h := healthOf(next); h["0000:3b:02.1"] != pluginapi.Healthy {
		t.Fatalf("after the change: %v", h)
	}

	// The kubelet restarts: a new kubelet.sock, plugin sockets removed.
	k.srv.Stop()
	_ = os.Remove(filepath.Join(dir, r.Endpoint))
	k2 := startKubelet(t, dir)
	if again := waitRegister(t, k2); again.ResourceName != r.ResourceName {
		t.Fatalf("re-registered as %+v", again)
	}
}

func healthOf(r *pluginapi.ListAndWatchResponse) map[string]string {
	out := map[string]string{}
	for _, d := range r.Devices {
		out[d.ID] = d.Health
	}
	return out
}

func TestAllocate(t *testing.T) {
	dev := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dev, "vfio"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vfio/vfio", "vfio/42", "vfio/43"} {
		if err := os.WriteFile(filepath.Join(dev, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vfio := &Plugin{Resource: "berth.dev/dpdk", DevRoot: dev, VFs: []nodeconfig.VF{
		{PCIAddress: "0000:3b:02.2", ResourceName: "berth.dev/dpdk", Mode: nodeconfig.SRIOVModeVFIO, IOMMUGroup: "42", NUMANode: -1},
		{PCIAddress: "0000:3b:02.3", ResourceName: "berth.dev/dpdk", Mode: nodeconfig.SRIOVModeVFIO, IOMMUGroup: "43", NUMANode: -1},
	}}
	resp, err := vfio.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"0000:3b:02.2", "0000:3b:02.3"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.ContainerResponses[0]
	if got := c.Envs["PCIDEVICE_BERTH_DEV_DPDK"]; got != "0000:3b:02.2,0000:3b:02.3" {
		t.Errorf("env = %q", got)
	}
	var paths []string
	for _, d := range c.Devices {
		paths = append(paths, d.ContainerPath+"="+d.HostPath+":"+d.Permissions)
	}
	want := []string{"/dev/vfio/42=" + dev + "/vfio/42:rw", "/dev/vfio/43=" + dev + "/vfio/43:rw", "/dev/vfio/vfio=" + dev + "/vfio/vfio:rw"}
	if !slices.Equal(paths, want) {
		t.Errorf("devices %v, want %v", paths, want)
	}
	if h := (NodeHealth{DevRoot: dev}).Healthy(vfio.VFs[0]); !h {
		t.Error("a vfio VF whose group device exists is unhealthy")
	}
	if h := (NodeHealth{DevRoot: t.TempDir()}).Healthy(vfio.VFs[0]); h {
		t.Error("a vfio VF without its group device is healthy")
	}
	if _, err := vfio.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"0000:99:00.0"}}}}); err == nil {
		t.Error("allocating an unknown device succeeded")
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"intel.com/intel_sriov_netdevice": "PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE",
		"berth.dev/ens1f0":                "PCIDEVICE_BERTH_DEV_ENS1F0",
		"example.org/a-b":                 "PCIDEVICE_EXAMPLE_ORG_A_B",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPreferredAllocationSameNUMA(t *testing.T) {
	p := &Plugin{VFs: []nodeconfig.VF{
		{PCIAddress: "a0", NUMANode: 0}, {PCIAddress: "b1", NUMANode: 1}, {PCIAddress: "c1", NUMANode: 1}, {PCIAddress: "d0", NUMANode: 0}, {PCIAddress: "e1", NUMANode: 1},
	}}
	resp, err := p.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
		{AvailableDeviceIDs: []string{"a0", "b1", "c1", "d0", "e1"}, AllocationSize: 2},
		{AvailableDeviceIDs: []string{"a0", "b1", "c1", "d0"}, MustIncludeDeviceIDs: []string{"a0"}, AllocationSize: 2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.ContainerResponses[0].DeviceIDs; !slices.Equal(got, []string{"b1", "c1"}) {
		t.Errorf("two from the fullest NUMA node: got %v", got)
	}
	if got := resp.ContainerResponses[1].DeviceIDs; !slices.Equal(got, []string{"a0", "d0"}) {
		t.Errorf("must-include a0 and a partner on its node: got %v", got)
	}
}

func TestNodeHealthNetdevice(t *testing.T) {
	vf := nodeconfig.VF{PCIAddress: "0000:3b:02.0", Interface: "v0", MAC: "02:00:00:00:00:01", Mode: nodeconfig.SRIOVModeNetdevice}
	links := func(have ...string) func() (map[string]bool, error) {
		return func() (map[string]bool, error) {
			m := map[string]bool{}
			for _, h := range have {
				m[h] = true
			}
			return m, nil
		}
	}
	none := func() map[string]bool { return nil }
	if !(NodeHealth{Links: links("eth0", "v0"), Allocated: none}).Healthy(vf) {
		t.Error("a VF in the node by name is unhealthy")
	}
	if !(NodeHealth{Links: links("eth0", "02:00:00:00:00:01"), Allocated: none}).Healthy(vf) {
		t.Error("a VF in the node by MAC is unhealthy")
	}
	if (NodeHealth{Links: links("eth0"), Allocated: none}).Healthy(vf) {
		t.Error("a VF that is nowhere is healthy")
	}
	if !(NodeHealth{Links: links("eth0"), Allocated: func() map[string]bool { return map[string]bool{vf.PCIAddress: true} }}).Healthy(vf) {
		t.Error("a VF allocated to a pod (moved into it) is unhealthy")
	}
}
