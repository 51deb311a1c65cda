package sriov

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

func testHost(root string, defaultRoute ...string) Host {
	return Host{
		SysfsRoot:              root,
		Geteuid:                func() int { return 0 },
		DefaultRouteInterfaces: func() ([]string, error) { return defaultRoute, nil },
	}
}

// cluster is a control plane and workers with the given sriov entries,
// defaulted and validated as Load would.
func cluster(t *testing.T, workers ...[]config.SRIOV) *config.Cluster {
	t.Helper()
	c := &config.Cluster{Nodes: []config.Node{{Role: nodeconfig.RoleControlPlane}}}
	for _, w := range workers {
		c.Nodes = append(c.Nodes, config.Node{Role: nodeconfig.RoleWorker, SRIOV: w})
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func pcis(vfs []nodeconfig.VF) []string {
	var out []string
	for _, vf := range vfs {
		out = append(out, vf.PCIAddress)
	}
	return out
}

func TestPlanByCountAndIndex(t *testing.T) {
	tree, added := newTree(t)
	h := testHost(tree.Root)
	c := cluster(t,
		[]config.SRIOV{{PF: "ens1f0", VFs: 1, IPAM: map[string]any{"type": "host-local", "subnet": "192.168.100.0/24"}}},
		[]config.SRIOV{{PF: "ens1f0", VFIndexes: []int{0}}, {PF: "ens1f0", VFIndexes: []int{3}, Mode: "vfio", ResourceName: "example.com/dpdk"}},
	)
	got, err := h.Plan(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(got[0]) != 0 {
		t.Fatalf("plan %+v: want nothing for the control plane", got)
	}
	// Index 0 went to the second worker, so the first one's count takes 1.
	w1 := got[1]
	if !reflect.DeepEqual(pcis(w1), []string{added.VFs[1].PCIAddress}) {
		t.Errorf("worker 1 got %v, want VF 1", pcis(w1))
	}
	want := nodeconfig.VF{PF: "ens1f0", PCIAddress: added.VFs[1].PCIAddress, Interface: "ens1f0v1", MAC: "02:00:00:00:00:aa",
		ResourceName: "berth.dev/ens1f0", Mode: "netdevice", NUMANode: 1, IOMMUGroup: "43",
		IPAM: json.RawMessage(`{"subnet":"192.168.100.0/24","type":"host-local"}`)}
	if !reflect.DeepEqual(w1[0], want) {
		t.Errorf("worker 1's VF:\n got %+v\nwant %+v", w1[0], want)
	}
	w2 := got[2]
	if !reflect.DeepEqual(pcis(w2), []string{added.VFs[0].PCIAddress, added.VFs[3].PCIAddress}) {
		t.Fatalf("worker 2 got %v, want VFs 0 and 3", pcis(w2))
	}
	if vfio := w2[1]; vfio.Mode != "vfio" || vfio.Interface != "" || vfio.IOMMUGroup != "45" || vfio.ResourceName != "example.com/dpdk" {
		t.Errorf("vfio VF %+v", vfio)
	}
	for i, vfs := range got {
		for _, vf := range vfs {
			if err := vf.Validate(); err != nil {
				t.Errorf("node %d: %v", i, err)
			}
		}
	}
	if devs := VFIODevices(w2); !reflect.DeepEqual(devs, []string{"/dev/vfio/vfio", "/dev/vfio/45"}) {
		t.Errorf("vfio devices %v", devs)
	}
	if devs := VFIODevices(w1); devs != nil {
		t.Errorf("vfio devices of a netdevice node: %v", devs)
	}
	// The label round trip the lifecycle relies on.
	label, err := nodeconfig.FormatVFLabel(w2)
	if err != nil {
		t.Fatal(err)
	}
	taken, err := TakenFromLabels([]map[string]string{{nodeconfig.LabelCluster: "other", nodeconfig.LabelSRIOV: label}, {nodeconfig.LabelCluster: "plain"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(taken) != 2 || taken[added.VFs[0].PCIAddress] != `a node of cluster "other"` {
		t.Errorf("taken %v", taken)
	}
}

func TestPlanFreeVFRule(t *testing.T) {
	tree, added := newTree(t)
	taken, err := TakenFromLabels([]map[string]string{{
		nodeconfig.LabelCluster: "sh-other",
		nodeconfig.LabelSRIOV:   `[{"pf":"ens1f0","pciAddress":"` + added.VFs[0].PCIAddress + `","interface":"ens1f0v0","resourceName":"berth.dev/ens1f0","mode":"netdevice","numaNode":1}]`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	// VF 0 is held by another cluster, VF 1 carries the default route:
	// only VF 2 is free for netdevice mode.
	h := testHost(tree.Root, "ens1f0v1")
	got, err := h.Plan(context.Background(), cluster(t, []config.SRIOV{{PF: "ens1f0", VFs: 1}}), taken)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pcis(got[1]), []string{added.VFs[2].PCIAddress}) {
		t.Errorf("got %v, want VF 2 only", pcis(got[1]))
	}
	_, err = h.Plan(context.Background(), cluster(t, []config.SRIOV{{PF: "ens1f0", VFs: 2}}), taken)
	wantErr(t, err, "nodes[1].sriov[0].vfs: 2 VFs asked for, but ens1f0 has 1 free of 4 (1 held by other berth nodes; 1 carry the host's default route; 1 without a network interface on the host): ask for fewer, free some (delete the cluster holding them) or give the PF more VFs")
	_, err = h.Plan(context.Background(), cluster(t, []config.SRIOV{{PF: "ens1f0", VFIndexes: []int{0}}}), taken)
	wantErr(t, err, `nodes[1].sriov[0].vfIndexes[0]: VF 0 of ens1f0 (`+added.VFs[0].PCIAddress+`) is held by a node of cluster "sh-other"`)
	_, err = h.Plan(context.Background(), cluster(t, []config.SRIOV{{PF: "ens1f0", VFIndexes: []int{1}}}), taken)
	wantErr(t, err, "nodes[1].sriov[0].vfIndexes[0]: VF 1 of ens1f0 ("+added.VFs[1].PCIAddress+") (ens1f0v1) carries the host's default route")
}

func TestPlanErrorsNameTheField(t *testing.T) {
	tree, added := newTree(t)
	h := testHost(tree.Root)
	for _, tc := range []struct {
		name    string
		workers [][]config.SRIOV
		want    string
	}{
		{"unknown PF", [][]config.SRIOV{{{PF: "nosuch0", VFs: 1}}},
			"nodes[1].sriov[0].pf: nosuch0 is not a network interface of this host"},
		{"PF without SR-IOV", [][]config.SRIOV{{{PF: "ens2f0", VFs: 1}}},
			"nodes[1].sriov[0].pf: ens2f0: not an SR-IOV physical function: PCI device"},
		{"virtual netdev", [][]config.SRIOV{nil, {{PF: "br0", VFs: 1}}},
			"nodes[2].sriov[0].pf: br0: not an SR-IOV physical function"},
		{"PF without VFs", [][]config.SRIOV{{{PF: "ens3f0", VFs: 1}}},
			"nodes[1].sriov[0].pf: ens3f0 has no VFs (sriov_numvfs is 0): set createVFs"},
		{"more VFs than the PF can have", [][]config.SRIOV{{{PF: "ens3f0", VFs: 1, CreateVFs: 9}}},
			"nodes[1].sriov[0].createVFs: 9, but ens3f0 supports at most 8 VFs"},
		{"too many VFs", [][]config.SRIOV{{{PF: "ens1f0", VFs: 4}}},
			"nodes[1].sriov[0].vfs: 4 VFs asked for, but ens1f0 has 3 free of 4 (1 without a network interface on the host): ask for fewer or give the PF more VFs (sriov_numvfs: at most 8"},
		{"too many VFs over two nodes", [][]config.SRIOV{{{PF: "ens1f0", VFs: 2}}, {{PF: "ens1f0", VFs: 2}}},
			"nodes[2].sriov[0].vfs: 2 VFs asked for, but ens1f0 has 1 free of 4 (2 asked for by other entries; 1 without a network interface on the host)"},
		{"index out of range", [][]config.SRIOV{{{PF: "ens1f0", VFIndexes: []int{1, 4}}}},
			"nodes[1].sriov[0].vfIndexes[1]: ens1f0 has 4 VFs (0 to 3), not VF 4"},
		{"vfio VF not bound to vfio-pci", [][]config.SRIOV{{{PF: "ens1f0", VFIndexes: []int{2}, Mode: "vfio"}}},
			`nodes[1].sriov[0].vfIndexes[0]: VF 2 of ens1f0 (` + added.VFs[2].PCIAddress + `) is bound to "iavf", not vfio-pci: bind it with ` + "`modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/" + added.VFs[2].PCIAddress + "/driver_override"},
		{"too few vfio VFs", [][]config.SRIOV{{{PF: "ens1f0", VFs: 2, Mode: "vfio"}}},
			"nodes[1].sriov[0].vfs: 2 VFs asked for, but ens1f0 has 1 free of 4 (3 not bound to vfio-pci): ask for fewer or bind more VFs to vfio-pci"},
		{"netdevice VF without a netdev", [][]config.SRIOV{{{PF: "ens1f0", VFIndexes: []int{3}}}},
			`nodes[1].sriov[0].vfIndexes[0]: VF 3 of ens1f0 (` + added.VFs[3].PCIAddress + `) has no network interface on the host (driver: vfio-pci): bind it to its NIC's VF driver, or use mode vfio`},
	} {
		_, err := h.Plan(context.Background(), cluster(t, tc.workers...), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\nerror %v\nwant one containing %q", tc.name, err, tc.want)
		}
	}
}

// The same index on two nodes is refused by the configuration's own
// validation and, should Plan be given an unvalidated one, by Plan.
func TestPlanSameVFOnTwoNodes(t *testing.T) {
	tree, _ := newTree(t)
	c := &config.Cluster{Nodes: []config.Node{
		{Role: nodeconfig.RoleControlPlane, SRIOV: []config.SRIOV{{PF: "ens1f0", VFIndexes: []int{1}}}},
		{Role: nodeconfig.RoleWorker, SRIOV: []config.SRIOV{{PF: "ens1f0", VFIndexes: []int{1}}}},
	}}
	c.SetDefaults()
	wantErr(t, c.Validate(), "nodes[1].sriov[0].vfIndexes[0]: VF 1 of ens1f0 is also asked for by nodes[0].sriov[0]")
	_, err := testHost(tree.Root).Plan(context.Background(), c, nil)
	wantErr(t, err, "nodes[1].sriov[0].vfIndexes[0]: VF 1 of ens1f0 is also asked for by nodes[0].sriov[0]")
}

func TestPlanNeedsRootOnlyWithSRIOV(t *testing.T) {
	tree, _ := newTree(t)
	h := testHost(tree.Root)
	h.Geteuid = func() int { return 1000 }
	_, err := h.Plan(context.Background(), cluster(t, nil, []config.SRIOV{{PF: "ens1f0", VFs: 1}}), nil)
	wantErr(t, err, "nodes[2].sriov: moving VFs into nodes needs root: run berth as root")
	got, err := h.Plan(context.Background(), cluster(t, nil), nil)
	if err != nil || len(got) != 2 {
		t.Errorf("a cluster without sriov as non-root: %v, %v", got, err)
	}
}

func TestPlanCreatesVFs(t *testing.T) {
	tree, _ := newTree(t)
	h := testHost(tree.Root)
	h.settle = 1 // no kernel makes the VFs here: do not wait
	_, err := h.Plan(context.Background(), cluster(t, []config.SRIOV{{PF: "ens3f0", VFs: 2, CreateVFs: 4}}), nil)
	// The fake tree gets no VFs from the write, so the selection fails,
	// but sriov_numvfs was written.
	wantErr(t, err, "nodes[1].sriov[0].vfs: 2 VFs asked for, but ens3f0 has 0 free of 0")
	b, err := os.ReadFile(filepath.Join(tree.Root, "class/net/ens3f0/device/sriov_numvfs"))
	if err != nil || strings.TrimSpace(string(b)) != "4" {
		t.Errorf("sriov_numvfs %q, %v: want 4", b, err)
	}
	// A PF with VFs is never touched, createVFs or not.
	pf, _ := h.PF("ens1f0")
	if _, err := h.Plan(context.Background(), cluster(t, []config.SRIOV{{PF: "ens1f0", VFs: 1, CreateVFs: 8}}), nil); err != nil {
		t.Fatal(err)
	}
	if after, _ := h.PF("ens1f0"); after.NumVFs != pf.NumVFs {
		t.Errorf("sriov_numvfs of ens1f0 went from %d to %d", pf.NumVFs, after.NumVFs)
	}
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	var fe config.FieldErrors
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v\nwant one containing %q", err, want)
	} else if !errors.As(err, &fe) {
		t.Errorf("error %v is no config.FieldErrors", err)
	}
}
