package nodeconfig

import (
	"strings"
	"testing"
)

func TestPodCIDRFor(t *testing.T) {
	for _, c := range []struct {
		subnet string
		index  int
		want   string
	}{
		{"10.244.0.0/16", 0, "10.244.0.0/24"},
		{"10.244.0.0/16", 2, "10.244.2.0/24"},
		{"10.244.0.0/16", 255, "10.244.255.0/24"},
		{"10.8.0.0/14", 300, "10.9.44.0/24"},
		{"192.168.4.0/22", 3, "192.168.7.0/24"},
		{"172.20.9.0/24", 0, "172.20.9.0/24"},
	} {
		got, err := PodCIDRFor(c.subnet, c.index)
		if err != nil || got != c.want {
			t.Errorf("PodCIDRFor(%s, %d) = %q, %v; want %q", c.subnet, c.index, got, err, c.want)
		}
	}
	for _, c := range []struct {
		subnet string
		index  int
		want   string
	}{
		{"10.244.0.0/16", 256, "room for 256 nodes"},
		{"192.168.4.0/22", 4, "room for 4 nodes"},
		{"10.244.0.0/25", 0, "/24 or larger"},
		{"fd00::/64", 0, "IPv4"},
		{"nope", 0, "pod subnet"},
	} {
		if _, err := PodCIDRFor(c.subnet, c.index); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PodCIDRFor(%s, %d): error %v, want one mentioning %q", c.subnet, c.index, err, c.want)
		}
	}
}

func TestVFLabelRoundTrip(t *testing.T) {
	vfs := []VF{{PF: "ens1f0", PCIAddress: "0000:3b:02.0", Interface: "ens1f0v0", MAC: "02:00:00:00:00:01", ResourceName: "berth.dev/ens1f0", Mode: SRIOVModeNetdevice, NUMANode: -1}}
	s, err := FormatVFLabel(vfs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseVFLabel(s)
	if err != nil || len(got) != 1 || got[0].PCIAddress != vfs[0].PCIAddress || got[0].NUMANode != -1 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if err := got[0].Validate(); err != nil {
		t.Fatal(err)
	}
	bad := got[0]
	bad.Mode = SRIOVModeVFIO
	if err := bad.Validate(); err == nil {
		t.Fatal("vfio VF without IOMMU group validated")
	}
}
