// Package sriov is the host side of SR-IOV passthrough: it finds
// physical functions (PFs) and their virtual functions (VFs) in sysfs,
// decides which VFs each node of a cluster gets, and moves VF netdevs
// between the host's network namespace and the nodes'.
//
// Intended use from cluster creation and the lifecycle commands (the
// node side, in berth-node, serves the VFs to the kubelet and the pods):
//
//   - Plan, at plan time, before anything is made: h := HostFromEnv();
//     taken := TakenFromLabels(labels of every berth container, of every
//     cluster); vfs, err := h.Plan(ctx, cfg, taken). err is a
//     config.FieldErrors naming the field (nodes[1].sriov[0].vfs: ...).
//     vfs[i] are nodes[i]'s VFs: they go into the node's node.json
//     (nodeconfig.Node.SRIOV) and onto its container as the label
//     nodeconfig.LabelSRIOV (nodeconfig.FormatVFLabel), which is how
//     later commands, and other clusters' plans, know who holds a VF.
//     vfio VFs also need VFIODevices(vfs[i]) passed to the container as
//     devices (Docker adds the matching cgroup rule).
//   - Attach(ctx, pid, vfs) after the node container has started (pid:
//     its init process on the host), before berth-node needs the VFs.
//   - Reclaim(ctx, pids, vfs) before a node is stopped or deleted: a
//     real VF returns to the host by itself when its namespace dies,
//     but under a name the driver picks, and a veth stand-in is
//     destroyed with it; Reclaim puts each back under its own name.
//   - Attach again after `berth start`: the restarted container has a
//     new network namespace.
//
// Nothing here touches a PF beyond writing sriov_numvfs when asked to
// (createVFs) and the PF has no VFs yet.
package sriov

import (
	"os"
	"time"
)

// Host is the machine's SR-IOV view: sysfs under SysfsRoot, the default
// route and the user from the running system unless a test replaces
// them.
type Host struct {
	// SysfsRoot is where sysfs is (DefaultSysfsRoot, or a fake tree).
	SysfsRoot string
	// Geteuid returns the effective user id (nil: os.Geteuid).
	Geteuid func() int
	// DefaultRouteInterfaces returns the host's default-route devices
	// (nil: the main routing table, through netlink).
	DefaultRouteInterfaces func() ([]string, error)

	// settle bounds the wait for VFs to show up after CreateVFs (0: 10s).
	settle time.Duration
}

// HostFromEnv is the running machine's Host, with sysfs at
// $BERTH_SYSFS_ROOT when that is set.
func HostFromEnv() Host {
	root := os.Getenv(EnvSysfsRoot)
	if root == "" {
		root = DefaultSysfsRoot
	}
	return Host{SysfsRoot: root}
}

func (h Host) root() string {
	if h.SysfsRoot == "" {
		return DefaultSysfsRoot
	}
	return h.SysfsRoot
}

func (h Host) euid() int {
	if h.Geteuid != nil {
		return h.Geteuid()
	}
	return os.Geteuid()
}

func (h Host) defaultRouteInterfaces() ([]string, error) {
	if h.DefaultRouteInterfaces != nil {
		return h.DefaultRouteInterfaces()
	}
	return DefaultRouteInterfaces()
}
