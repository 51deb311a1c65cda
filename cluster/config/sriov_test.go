package config

import (
	"encoding/json"
	"strings"
	"testing"
)

const sriovHead = "apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnodes:\n- role: control-plane\n"

func TestSRIOVFromFileWithDefaults(t *testing.T) {
	c, _, err := Load(strings.NewReader(sriovHead+`- role: worker
  sriov:
  - pf: ens1f0
    vfs: 2
    createVFs: 4
    ipam:
      type: host-local
      subnet: 192.168.100.0/24
  - pf: ens1f1
    vfIndexes: [0, 3]
    mode: vfio
    resourceName: example.com/dpdk
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Nodes[1].SRIOV
	if len(got) != 2 {
		t.Fatalf("sriov entries %+v, want 2", got)
	}
	if got[0].ResourceName != "berth.dev/ens1f0" || got[0].Mode != "netdevice" || got[0].VFs != 2 || got[0].CreateVFs != 4 {
		t.Errorf("first entry %+v: defaults not applied", got[0])
	}
	ipam, err := json.Marshal(got[0].IPAM)
	if err != nil || string(ipam) != `{"subnet":"192.168.100.0/24","type":"host-local"}` {
		t.Errorf("ipam as JSON: %s, %v", ipam, err)
	}
	if got[1].ResourceName != "example.com/dpdk" || got[1].Mode != "vfio" || len(got[1].VFIndexes) != 2 || got[1].VFIndexes[1] != 3 {
		t.Errorf("second entry %+v", got[1])
	}
}

func TestSRIOVErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ nodes, want string }{
		{"  sriov:\n  - vfs: 1\n", "line 6: nodes[0].sriov[0].pf: empty"},
		{"  sriov:\n  - pf: a/b\n    vfs: 1\n", `nodes[0].sriov[0].pf: "a/b" is not a network interface name`},
		{"  sriov:\n  - pf: ens1f0\n", "nodes[0].sriov[0].vfs: no VFs asked for"},
		{"  sriov:\n  - pf: ens1f0\n    vfs: -1\n", "nodes[0].sriov[0].vfs: -1 is negative"},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n    vfIndexes: [0]\n", "nodes[0].sriov[0].vfs: 1 and vfIndexes are both set"},
		{"  sriov:\n  - pf: ens1f0\n    vfIndexes: [1, -2]\n", "nodes[0].sriov[0].vfIndexes[1]: -2 is negative"},
		{"  sriov:\n  - pf: ens1f0\n    vfIndexes: [1, 1]\n", "nodes[0].sriov[0].vfIndexes[1]: VF 1 is listed twice"},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n    mode: dpdk\n", `nodes[0].sriov[0].mode: "dpdk" is neither netdevice nor vfio`},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n    resourceName: nodomain\n", `nodes[0].sriov[0].resourceName: "nodomain" is not an extended resource name`},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n    resourceName: kubernetes.io/vf\n", `nodes[0].sriov[0].resourceName: "kubernetes.io/vf"`},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n    createVFs: -1\n", "nodes[0].sriov[0].createVFs: -1 is negative"},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 3\n    createVFs: 2\n", "nodes[0].sriov[0].createVFs: 2 makes fewer VFs than vfs asks for (3)"},
		{"  sriov:\n  - pf: ens1f0\n    vfIndexes: [2]\n    createVFs: 2\n", "nodes[0].sriov[0].createVFs: 2 makes VFs 0 to 1, not VF 2"},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n    ipam: {subnet: 10.0.0.0/24}\n", "nodes[0].sriov[0].ipam: has no type"},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n  - pf: ens1f1\n    vfs: 1\n    resourceName: berth.dev/ens1f0\n    mode: vfio\n",
			"nodes[0].sriov[1].mode: vfio, but resource berth.dev/ens1f0 is netdevice (nodes[0].sriov[0])"},
		{"  sriov:\n  - pf: ens1f0\n    vfs: 1\n    createVFs: 4\n  - pf: ens1f0\n    vfs: 1\n    createVFs: 8\n",
			"nodes[0].sriov[1].createVFs: 8, but nodes[0].sriov[0].createVFs is 4 for the same PF ens1f0"},
		{"  sriov:\n  - pf: ens1f0\n    vfIndexes: [0, 3]\n- role: worker\n  sriov:\n  - pf: ens1f0\n    vfIndexes: [3]\n",
			"line 11: nodes[1].sriov[0].vfIndexes[0]: VF 3 of ens1f0 is also asked for by nodes[0].sriov[0]: a VF can go to one node only"},
	} {
		_, _, err := Load(strings.NewReader(sriovHead+tc.nodes), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\nerror %v,\nwant one containing %q", tc.nodes, err, tc.want)
		}
	}
}

func TestSRIOVSameIndexOfAnotherPFIsFine(t *testing.T) {
	_, _, err := Load(strings.NewReader(sriovHead+"  sriov:\n  - pf: ens1f0\n    vfIndexes: [0]\n- role: worker\n  sriov:\n  - pf: ens1f1\n    vfIndexes: [0]\n"), "test.yaml")
	if err != nil {
		t.Error(err)
	}
}

func TestSRIOVNotInKindFormat(t *testing.T) {
	_, _, err := Load(strings.NewReader("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnodes:\n- role: control-plane\n  sriov:\n  - pf: ens1f0\n    vfs: 1\n"), "test.yaml")
	if err == nil || !strings.Contains(err.Error(), "sriov") {
		t.Errorf("kind file with sriov: error %v, want one naming sriov", err)
	}
}
