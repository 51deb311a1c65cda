package sriov

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Taken records the VFs nodes hold: PCI address → who holds it.
type Taken map[string]string

// TakenFromLabels reads the VFs held by containers from their labels
// (nodeconfig.LabelSRIOV): pass the labels of every berth container, of
// every cluster, running or not.
func TakenFromLabels(labels []map[string]string) (Taken, error) {
	taken := Taken{}
	for _, l := range labels {
		vfs, err := nodeconfig.ParseVFLabel(l[nodeconfig.LabelSRIOV])
		if err != nil {
			return nil, fmt.Errorf("reading the VFs of a node of cluster %q: %w", l[nodeconfig.LabelCluster], err)
		}
		for _, vf := range vfs {
			taken[vf.PCIAddress] = fmt.Sprintf("a node of cluster %q", l[nodeconfig.LabelCluster])
		}
	}
	return taken, nil
}

// bindVFIOHint says how to bind a VF to vfio-pci.
func bindVFIOHint(pci string) string {
	return fmt.Sprintf("bind it with `modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/%[1]s/driver_override; "+
		"echo %[1]s > /sys/bus/pci/devices/%[1]s/driver/unbind; echo %[1]s > /sys/bus/pci/drivers_probe`", pci)
}

// pfState is one PF of the plan and its VFs.
type pfState struct {
	pf      PF
	vfs     []Device
	claimed map[int]string // VF index → the entry field that got it
}

// Plan decides which VFs each node of cfg (defaulted and validated) gets:
// the result's i-th element are nodes[i]'s VFs. taken holds the VFs of
// existing nodes (TakenFromLabels). Problems are a config.FieldErrors
// naming the field. Plan checks everything it can before it writes
// sriov_numvfs (createVFs), its only change to the host.
func (h Host) Plan(ctx context.Context, cfg *config.Cluster, taken Taken) ([][]nodeconfig.VF, error) {
	var errs config.FieldErrors
	add := func(field, format string, a ...any) {
		errs = append(errs, config.FieldError{Field: field, Detail: fmt.Sprintf(format, a...)})
	}
	first := ""
	for i, n := range cfg.Nodes {
		if len(n.SRIOV) > 0 && first == "" {
			first = fmt.Sprintf("nodes[%d].sriov", i)
		}
	}
	if first == "" {
		return make([][]nodeconfig.VF, len(cfg.Nodes)), nil
	}
	if h.euid() != 0 {
		add(first, "moving VFs into nodes needs root: run berth as root (sudo)")
		return nil, errs
	}

	// The PFs, and the VFs to create.
	pfs := map[string]*pfState{}
	create := map[string]int{}
	for i, n := range cfg.Nodes {
		for j, s := range n.SRIOV {
			field := fmt.Sprintf("nodes[%d].sriov[%d]", i, j)
			if _, seen := pfs[s.PF]; seen {
				continue
			}
			pf, err := h.PF(s.PF)
			switch {
			case errors.Is(err, ErrUnknownPF):
				add(field+".pf", "%s is not a network interface of this host (see `ip link`)", s.PF)
				continue
			case errors.Is(err, ErrNotSRIOV):
				add(field+".pf", "%v: name a PF of an SR-IOV capable NIC with its driver loaded", err)
				continue
			case err != nil:
				add(field+".pf", "%v", err)
				continue
			}
			pfs[s.PF] = &pfState{pf: pf, claimed: map[int]string{}}
		}
	}
	for i, n := range cfg.Nodes {
		for j, s := range n.SRIOV {
			st := pfs[s.PF]
			if st == nil {
				continue
			}
			field := fmt.Sprintf("nodes[%d].sriov[%d]", i, j)
			switch {
			case st.pf.NumVFs > 0 || create[s.PF] > 0:
			case s.CreateVFs > st.pf.TotalVFs:
				add(field+".createVFs", "%d, but %s supports at most %d VFs (sriov_totalvfs)", s.CreateVFs, s.PF, st.pf.TotalVFs)
			case s.CreateVFs > 0:
				create[s.PF] = s.CreateVFs
			default:
				add(field+".pf", "%s has no VFs (sriov_numvfs is 0): set createVFs, or create them with `echo N > /sys/class/net/%s/device/sriov_numvfs` (at most %d)",
					s.PF, s.PF, st.pf.TotalVFs)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for name, n := range create {
		st := pfs[name]
		if err := h.CreateVFs(st.pf, n); err != nil {
			return nil, err
		}
		if err := h.waitForVFs(ctx, st.pf, n); err != nil {
			return nil, err
		}
	}
	for _, st := range pfs {
		vfs, err := h.VFs(st.pf)
		if err != nil {
			return nil, err
		}
		st.vfs = vfs
	}
	defaultRoute := map[string]bool{}
	ifaces, err := h.defaultRouteInterfaces()
	if err != nil {
		return nil, fmt.Errorf("finding the host's default route: %w", err)
	}
	for _, name := range ifaces {
		defaultRoute[name] = true
	}

	// Why a VF can not go to an entry: the kind of reason (counted when
	// too few are free) and the whole of it; "" when it can.
	unusable := func(vf Device, s config.SRIOV) (kind, why string) {
		switch {
		case taken[vf.PCIAddress] != "":
			return "held by other berth nodes", "is held by " + taken[vf.PCIAddress]
		case vf.Interface != "" && defaultRoute[vf.Interface]:
			return "carry the host's default route", fmt.Sprintf("(%s) carries the host's default route", vf.Interface)
		case s.Mode == nodeconfig.SRIOVModeVFIO && vf.Driver != "vfio-pci":
			return "not bound to vfio-pci", fmt.Sprintf("is bound to %q, not vfio-pci: %s", vf.Driver, bindVFIOHint(vf.PCIAddress))
		case s.Mode == nodeconfig.SRIOVModeVFIO && vf.IOMMUGroup == "":
			return "without an IOMMU group", "has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line)"
		case s.Mode == nodeconfig.SRIOVModeNetdevice && vf.Interface == "":
			driver := vf.Driver
			if driver == "" {
				driver = "none"
			}
			return "without a network interface on the host",
				fmt.Sprintf("has no network interface on the host (driver: %s): bind it to its NIC's VF driver, or use mode vfio", driver)
		}
		return "", ""
	}

	result := make([][]nodeconfig.VF, len(cfg.Nodes))
	give := func(i int, s config.SRIOV, vf Device) error {
		v := nodeconfig.VF{
			PF: s.PF, PCIAddress: vf.PCIAddress, MAC: vf.MAC,
			ResourceName: s.ResourceName, Mode: s.Mode,
			NUMANode: vf.NUMANode, IOMMUGroup: vf.IOMMUGroup,
		}
		if s.Mode == nodeconfig.SRIOVModeNetdevice {
			v.Interface = vf.Interface
		}
		if s.IPAM != nil {
			b, err := json.Marshal(s.IPAM)
			if err != nil {
				return err
			}
			v.IPAM = b
		}
		result[i] = append(result[i], v)
		return nil
	}

	// VFs asked for by index first, so that a count never takes them.
	for i, n := range cfg.Nodes {
		for j, s := range n.SRIOV {
			st := pfs[s.PF]
			field := fmt.Sprintf("nodes[%d].sriov[%d]", i, j)
			for k, idx := range s.VFIndexes {
				f := fmt.Sprintf("%s.vfIndexes[%d]", field, k)
				if idx >= len(st.vfs) || st.vfs[idx].Index != idx {
					add(f, "%s has %d VFs (0 to %d), not VF %d", s.PF, len(st.vfs), len(st.vfs)-1, idx)
					continue
				}
				vf := st.vfs[idx]
				if prev, dup := st.claimed[idx]; dup {
					add(f, "VF %d of %s is also asked for by %s: a VF can go to one node only", idx, s.PF, prev)
					continue
				}
				if _, why := unusable(vf, s); why != "" {
					add(f, "VF %d of %s (%s) %s", idx, s.PF, vf.PCIAddress, why)
					continue
				}
				st.claimed[idx] = field
				if err := give(i, s, vf); err != nil {
					add(field+".ipam", "%v", err)
				}
			}
		}
	}
	for i, n := range cfg.Nodes {
		for j, s := range n.SRIOV {
			if s.VFs == 0 {
				continue
			}
			st := pfs[s.PF]
			field := fmt.Sprintf("nodes[%d].sriov[%d]", i, j)
			var free []Device
			reasons := map[string]int{}
			for _, vf := range st.vfs {
				if _, claimed := st.claimed[vf.Index]; claimed {
					reasons["asked for by other entries"]++
					continue
				}
				if kind, _ := unusable(vf, s); kind != "" {
					reasons[kind]++
					continue
				}
				free = append(free, vf)
			}
			if len(free) < s.VFs {
				add(field+".vfs", "%d VFs asked for, but %s has %d free of %d%s: %s",
					s.VFs, s.PF, len(free), len(st.vfs), describeReasons(reasons), nextStep(s, st, reasons["held by other berth nodes"] > 0))
				continue
			}
			for _, vf := range free[:s.VFs] {
				st.claimed[vf.Index] = field
				if err := give(i, s, vf); err != nil {
					add(field+".ipam", "%v", err)
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return result, nil
}

func describeReasons(reasons map[string]int) string {
	if len(reasons) == 0 {
		return ""
	}
	var parts []string
	first := []string{"held by other berth nodes", "asked for by other entries", "carry the host's default route"}
	for _, kind := range first {
		if n := reasons[kind]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, kind))
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(reasons)) {
		if !slices.Contains(first, kind) {
			parts = append(parts, fmt.Sprintf("%d %s", reasons[kind], kind))
		}
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func nextStep(s config.SRIOV, st *pfState, held bool) string {
	steps := []string{"ask for fewer"}
	if held {
		steps = append(steps, "free some (delete the cluster holding them)")
	}
	if s.Mode == nodeconfig.SRIOVModeVFIO {
		steps = append(steps, "bind more VFs to vfio-pci")
	} else if st.pf.NumVFs < st.pf.TotalVFs {
		steps = append(steps, fmt.Sprintf("give the PF more VFs (sriov_numvfs: at most %d; it must be set to 0 first)", st.pf.TotalVFs))
	}
	if len(steps) == 1 {
		return steps[0]
	}
	return strings.Join(steps[:len(steps)-1], ", ") + " or " + steps[len(steps)-1]
}

// waitForVFs waits for the kernel (and udev) to make the n VFs that
// CreateVFs asked for: their virtfnN links, and a bound driver each.
func (h Host) waitForVFs(ctx context.Context, pf PF, n int) error {
	settle := h.settle
	if settle == 0 {
		settle = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	for {
		vfs, err := h.VFs(pf)
		ready := err == nil && len(vfs) >= n
		for _, vf := range vfs {
			if vf.Driver == "" {
				ready = false
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			// Selection says which VFs are missing what.
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// VFIODevices lists the device files a node needs for its vfio VFs:
// /dev/vfio/vfio and /dev/vfio/<group> of each, without repeats.
func VFIODevices(vfs []nodeconfig.VF) []string {
	var devs []string
	seen := map[string]bool{}
	for _, vf := range vfs {
		if vf.Mode != nodeconfig.SRIOVModeVFIO || vf.IOMMUGroup == "" {
			continue
		}
		if len(devs) == 0 {
			devs = append(devs, "/dev/vfio/vfio")
		}
		if p := filepath.Join("/dev/vfio", vf.IOMMUGroup); !seen[p] {
			seen[p] = true
			devs = append(devs, p)
		}
	}
	return devs
}
