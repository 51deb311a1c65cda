package docker

import (
	"archive/tar"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/docker/go-connections/nat"

	"github.com/berth-dev/berth/cluster/provider"
)

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestFreeSubnetSkipsUsedRanges(t *testing.T) {
	if got := FreeSubnet(nil); got.String() != "172.30.0.0/24" {
		t.Errorf("FreeSubnet(none used) = %s", got)
	}
	used := []*net.IPNet{cidr("172.30.0.0/24"), cidr("172.30.1.128/25"), cidr("172.17.0.0/16")}
	if got := FreeSubnet(used); got.String() != "172.30.2.0/24" {
		t.Errorf("FreeSubnet = %s, want 172.30.2.0/24", got)
	}
	// A network covering the whole first range pushes us to the second.
	if got := FreeSubnet([]*net.IPNet{cidr("172.16.0.0/12")}); got.String() != "10.210.0.0/24" {
		t.Errorf("FreeSubnet = %s, want 10.210.0.0/24", got)
	}
}

func TestPortsBindLoopbackByDefault(t *testing.T) {
	exposed, bindings, err := portBindings([]provider.PortMapping{
		{HostPort: 6443, ContainerPort: 6443},
		{ContainerPort: 80, HostPort: 8080, Protocol: "TCP"},
		{ContainerPort: 53, Protocol: "udp"},
		{ListenAddress: "0.0.0.0", ContainerPort: 443, HostPort: 8443},
		{ListenAddress: "192.0.2.1", ContainerPort: 443, HostPort: 9443},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(exposed) != 4 {
		t.Errorf("exposed %v, want 4 ports", exposed)
	}
	want := map[nat.Port][]nat.PortBinding{
		"6443/tcp": {{HostIP: "127.0.0.1", HostPort: "6443"}},
		"80/tcp":   {{HostIP: "127.0.0.1", HostPort: "8080"}},
		"53/udp":   {{HostIP: "127.0.0.1", HostPort: ""}},
		// A listen address the user configured is kept.
		"443/tcp": {{HostIP: "0.0.0.0", HostPort: "8443"}, {HostIP: "192.0.2.1", HostPort: "9443"}},
	}
	if !reflect.DeepEqual(map[nat.Port][]nat.PortBinding(bindings), want) {
		t.Errorf("bindings = %v\nwant %v", bindings, want)
	}
	if _, _, err := portBindings([]provider.PortMapping{{ContainerPort: -1}}); err == nil {
		t.Error("an invalid port was accepted")
	}
}

func TestNodeHostConfigExplicitCapabilities(t *testing.T) {
	host := nodeHostConfig(provider.NodeSpec{Name: "n"}, nil, nil)
	if host.Privileged {
		t.Error("a node container is privileged")
	}
	if !slices.Equal(host.CapDrop, []string{"ALL"}) {
		t.Errorf("cap drop = %v, want ALL (every capability granted is listed)", host.CapDrop)
	}
	for _, c := range []string{"SYS_ADMIN", "NET_ADMIN"} {
		if !slices.Contains(host.CapAdd, c) {
			t.Errorf("cap add %v lacks %s", host.CapAdd, c)
		}
	}
	for _, c := range []string{"ALL", "SYS_RESOURCE", "SYS_MODULE", "SYS_TIME", "SYS_RAWIO", "DAC_READ_SEARCH", "SYS_BOOT", "MAC_ADMIN", "BPF", "PERFMON"} {
		if slices.Contains(host.CapAdd, c) {
			t.Errorf("cap add %v grants %s", host.CapAdd, c)
		}
	}
	helper := nodeHostConfig(provider.NodeSpec{Name: "lb", Helper: true}, nil, nil)
	if helper.Privileged || len(helper.CapAdd) > 0 || helper.SecurityOpt != nil || helper.Resources.DeviceCgroupRules != nil {
		t.Errorf("the helper container gets privileges: %+v", helper)
	}
}

func TestTarFilesDirectoryModes(t *testing.T) {
	r, err := tarFiles([]provider.File{
		{Path: "/etc/kubernetes/pki", Mode: os.ModeDir | 0o700},
		{Path: "/etc/kubernetes/pki/ca.key", Mode: 0o600, Data: []byte("k")},
		{Path: "/etc/berth/node.json", Data: []byte("{}")},
	})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int64{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
	}
	want := map[string]int64{
		"etc/kubernetes/pki/": 0o700, "etc/kubernetes/pki/ca.key": 0o600,
		"etc/": 0o755, "etc/berth/": 0o755, "etc/berth/node.json": 0o644,
	}
	if !reflect.DeepEqual(modes, want) {
		t.Errorf("modes = %v\nwant %v", modes, want)
	}
	if _, err := tarFiles([]provider.File{
		{Path: "/etc/kubernetes/pki/ca.key", Mode: 0o600},
		{Path: "/etc/kubernetes/pki", Mode: os.ModeDir | 0o700},
	}); err == nil {
		t.Error("a directory listed after its files was accepted (its mode would be lost)")
	}
}
