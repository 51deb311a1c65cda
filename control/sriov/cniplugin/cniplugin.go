// Package cniplugin is berth-sriov, the chained CNI plugin that moves the
// SR-IOV VFs the kubelet allocated to a pod into it. berth-node is the
// plugin when run as /opt/cni/bin/berth-sriov; the pod network's
// configuration lists it last, and only on nodes with netdevice VFs.
//
// ADD asks the kubelet's PodResources API which devices of the node's
// SR-IOV resources the pod got, and for each delegates to the upstream
// host-device plugin, which moves the VF's netdev into the pod as net1,
// net2, … (keeping its MAC and MTU), with an address from the VF's IPAM
// configuration when it has one. What it did is recorded, so that DEL can
// give every VF back to the node's namespace even after the kubelet
// forgot the pod.
package cniplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/control/sriov"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Defaults of NetConf's paths: where they are in a node.
const (
	DefaultDataDir = "/var/lib/cni/berth-sriov"
	// delegatePlugin moves a netdev into the pod and back.
	delegatePlugin = "host-device"
	// timeout bounds a whole ADD or DEL: the PodResources call has its
	// own, shorter one.
	timeout = 30 * time.Second
)

// NetConf is berth-sriov's entry in the pod network's plugin chain. Every
// field but those of types.NetConf is optional.
type NetConf struct {
	types.NetConf
	// NodeConfig is the node configuration that lists the node's VFs.
	NodeConfig string `json:"nodeConfig,omitempty"`
	// PodResourcesSocket is the kubelet's PodResources API.
	PodResourcesSocket string `json:"podResourcesSocket,omitempty"`
	// DataDir keeps, per attachment, which VFs ADD moved into the pod.
	DataDir string `json:"dataDir,omitempty"`
}

// podArgs are the CNI_ARGS the kubelet's runtime passes.
type podArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
	K8S_POD_UID                types.UnmarshallableString //nolint:revive
}

// Plugin is berth-sriov with what it talks to, replaceable in tests.
type Plugin struct {
	// Exec runs the delegated plugins.
	Exec invoke.Exec
	// PodDevices asks the kubelet which devices of resources a pod has.
	PodDevices func(ctx context.Context, socket, namespace, name string, resources map[string]bool) (map[string][]string, error)
	// Links lists the node namespace's interfaces.
	Links func() ([]sriov.Link, error)
	// HasLink reports whether the network namespace at path has an
	// interface named ifname.
	HasLink func(nsPath, ifname string) (bool, error)
	// Stdout receives ADD's result.
	Stdout io.Writer
}

// New returns the plugin as it runs in a node.
func New() *Plugin {
	return &Plugin{
		Exec:       &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}},
		PodDevices: sriov.PodDevices,
		Links:      sriov.NodeLinks,
		HasLink:    hasLink,
		Stdout:     os.Stdout,
	}
}

// Main runs berth-sriov as a CNI plugin (the environment and stdin say
// what to do) and returns the process exit code.
func Main() int {
	p := New()
	err := skel.PluginMainFuncsWithError(skel.CNIFuncs{
		Add:   p.Add,
		Del:   p.Del,
		Check: p.Check,
		// berth-sriov is ready whenever the chain is: ADD asks the
		// kubelet itself and fails with a clear error if it cannot.
		Status: func(*skel.CmdArgs) error { return nil },
		GC:     func(*skel.CmdArgs) error { return nil },
	}, version.VersionsStartingFrom("1.0.0"), "berth-sriov: SR-IOV VFs into pods (berth)")
	if err != nil {
		_ = err.Print()
		return 1
	}
	return 0
}

func parseConf(data []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, fmt.Errorf("parsing the berth-sriov configuration: %w", err)
	}
	if conf.NodeConfig == "" {
		conf.NodeConfig = nodeconfig.Path
	}
	if conf.PodResourcesSocket == "" {
		conf.PodResourcesSocket = sriov.PodResourcesSocket
	}
	if conf.DataDir == "" {
		conf.DataDir = DefaultDataDir
	}
	return conf, nil
}

// attached is one VF ADD moved into a pod.
type attached struct {
	IfName     string `json:"ifName"`
	PCIAddress string `json:"pciAddress"`
	// Conf is the configuration host-device got (and gets again on DEL).
	Conf json.RawMessage `json:"conf"`
}

// record is what ADD did for one attachment (container and interface).
type record struct {
	VFs []attached `json:"vfs"`
}

func recordPath(conf *NetConf, args *skel.CmdArgs) string {
	return filepath.Join(conf.DataDir, args.ContainerID+"-"+args.IfName+".json")
}

// Add moves the pod's VFs in and adds them to the chain's result.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	result, err := prevResult(conf)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	vfs, err := p.podVFs(ctx, conf, args)
	if err != nil {
		return err
	}
	if len(vfs) == 0 {
		return p.print(result, conf.CNIVersion)
	}
	links, err := p.Links()
	if err != nil {
		return fmt.Errorf("listing the node's interfaces: %w", err)
	}
	var rec record
	for i, vf := range vfs {
		dev, ok := sriov.FindLink(vf, links)
		if !ok {
			return fmt.Errorf("VF %s (%s) of the pod is not in the node's network namespace", vf.PCIAddress, vf.Interface)
		}
		dconf, err := delegateConf(conf, vf, dev)
		if err != nil {
			return err
		}
		rec.VFs = append(rec.VFs, attached{IfName: fmt.Sprintf("net%d", i+1), PCIAddress: vf.PCIAddress, Conf: dconf})
	}
	// Recorded before anything moves: a DEL after a crash halfway
	// still finds every VF.
	if err := writeRecord(recordPath(conf, args), rec); err != nil {
		return err
	}
	for i, a := range rec.VFs {
		r, err := p.delegate(ctx, "ADD", a, args)
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = p.delOne(ctx, rec.VFs[j], args)
			}
			_ = os.Remove(recordPath(conf, args))
			return fmt.Errorf("moving VF %s into the pod as %s: %w", a.PCIAddress, a.IfName, err)
		}
		if err := merge(result, r); err != nil {
			return err
		}
	}
	return p.print(result, conf.CNIVersion)
}

// podVFs returns the netdevice VFs the kubelet allocated to the pod,
// ordered by resource name and PCI address (so net1, net2… are stable):
// none for a pod that asked for none, or on a node without VFs.
func (p *Plugin) podVFs(ctx context.Context, conf *NetConf, args *skel.CmdArgs) ([]nodeconfig.VF, error) {
	node, err := nodeconfig.Load(conf.NodeConfig)
	if err != nil {
		return nil, err
	}
	byID := map[string]nodeconfig.VF{}
	resources := map[string]bool{}
	for _, vf := range node.SRIOV {
		if vf.Mode == nodeconfig.SRIOVModeNetdevice {
			byID[vf.PCIAddress] = vf
			resources[vf.ResourceName] = true
		}
	}
	if len(byID) == 0 {
		return nil, nil
	}
	var pa podArgs
	if err := types.LoadArgs(args.Args, &pa); err != nil {
		return nil, fmt.Errorf("parsing CNI_ARGS: %w", err)
	}
	if pa.K8S_POD_NAME == "" {
		return nil, nil // not a Kubernetes pod: nothing was allocated
	}
	devs, err := p.PodDevices(ctx, conf.PodResourcesSocket, string(pa.K8S_POD_NAMESPACE), string(pa.K8S_POD_NAME), resources)
	if err != nil {
		return nil, err
	}
	var vfs []nodeconfig.VF
	for resource, ids := range devs {
		for _, id := range ids {
			vf, ok := byID[id]
			if !ok || vf.ResourceName != resource {
				return nil, fmt.Errorf("the kubelet allocated device %q of %s, which is not a VF of this node", id, resource)
			}
			vfs = append(vfs, vf)
		}
	}
	sort.Slice(vfs, func(i, j int) bool {
		if vfs[i].ResourceName != vfs[j].ResourceName {
			return vfs[i].ResourceName < vfs[j].ResourceName
		}
		return vfs[i].PCIAddress < vfs[j].PCIAddress
	})
	return vfs, nil
}

// delegateConf is host-device's configuration for vf, whose netdev is
// named dev in the node's namespace. Its network is named after the PF:
// host-local keeps each network's addresses in a directory of that name,
// apart from the pod network's.
func delegateConf(conf *NetConf, vf nodeconfig.VF, dev string) ([]byte, error) {
	c := map[string]any{
		"cniVersion": conf.CNIVersion,
		"name":       conf.Name + "-sriov-" + vf.PF,
		"type":       delegatePlugin,
		"device":     dev,
	}
	if len(vf.IPAM) > 0 {
		c["ipam"] = vf.IPAM
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding the host-device configuration: %w", err)
	}
	return b, nil
}

// delegate runs host-device for a with the pod's arguments but a's
// interface name.
func (p *Plugin) delegate(ctx context.Context, command string, a attached, args *skel.CmdArgs) (*current.Result, error) {
	path, err := p.Exec.FindInPath(delegatePlugin, filepath.SplitList(args.Path))
	if err != nil {
		return nil, err
	}
	iargs := &invoke.Args{Command: command, ContainerID: args.ContainerID, NetNS: args.Netns, PluginArgsStr: args.Args, IfName: a.IfName, Path: args.Path}
	if command != "ADD" {
		return nil, invoke.ExecPluginWithoutResult(ctx, path, a.Conf, iargs, p.Exec)
	}
	r, err := invoke.ExecPluginWithResult(ctx, path, a.Conf, iargs, p.Exec)
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(r)
}

// merge appends r (one VF's result) to result, moving its IPs' interface
// indexes past result's interfaces.
func merge(result, r *current.Result) error {
	offset := len(result.Interfaces)
	result.Interfaces = append(result.Interfaces, r.Interfaces...)
	for _, ip := range r.IPs {
		c := *ip
		if ip.Interface != nil {
			c.Interface = current.Int(*ip.Interface + offset)
		}
		result.IPs = append(result.IPs, &c)
	}
	result.Routes = append(result.Routes, r.Routes...)
	return nil
}

func prevResult(conf *NetConf) (*current.Result, error) {
	if conf.RawPrevResult == nil {
		return &current.Result{CNIVersion: current.ImplementedSpecVersion}, nil
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return nil, fmt.Errorf("parsing prevResult: %w", err)
	}
	r, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, fmt.Errorf("converting prevResult: %w", err)
	}
	return r, nil
}

func (p *Plugin) print(r *current.Result, cniVersion string) error {
	v, err := r.GetAsVersion(cniVersion)
	if err != nil {
		return err
	}
	return v.PrintTo(p.Stdout)
}

// Del gives every VF ADD moved into the pod back to the node. It succeeds
// when there is nothing to do: no record (the pod had no VFs, or DEL ran
// before), a VF already gone from the pod, a pod namespace already gone.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	path := recordPath(conf, args)
	rec, err := readRecord(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for i := len(rec.VFs) - 1; i >= 0; i-- {
		if err := p.delOne(ctx, rec.VFs[i], args); err != nil {
			errs = append(errs, fmt.Errorf("giving VF %s (%s) back to the node: %w", rec.VFs[i].PCIAddress, rec.VFs[i].IfName, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // the record stays for the runtime's retry
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// delOne gives a back: host-device releases its address and moves it out
// of the pod. Without the pod's namespace only the address is left to
// release, by the IPAM plugin itself.
func (p *Plugin) delOne(ctx context.Context, a attached, args *skel.CmdArgs) error {
	if args.Netns == "" || !exists(args.Netns) {
		return p.releaseIPAM(ctx, a, args)
	}
	err := func() error { _, err := p.delegate(ctx, "DEL", a, args); return err }()
	if err == nil {
		return nil
	}
	if has, herr := p.HasLink(args.Netns, a.IfName); herr == nil && !has {
		// Not in the pod (any more): host-device had nothing to move.
		return p.releaseIPAM(ctx, a, args)
	}
	return err
}

func (p *Plugin) releaseIPAM(ctx context.Context, a attached, args *skel.CmdArgs) error {
	var c struct {
		IPAM struct {
			Type string `json:"type"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(a.Conf, &c); err != nil || c.IPAM.Type == "" {
		return nil
	}
	path, err := p.Exec.FindInPath(c.IPAM.Type, filepath.SplitList(args.Path))
	if err != nil {
		return err
	}
	iargs := &invoke.Args{Command: "DEL", ContainerID: args.ContainerID, NetNS: args.Netns, PluginArgsStr: args.Args, IfName: a.IfName, Path: args.Path}
	return invoke.ExecPluginWithoutResult(ctx, path, a.Conf, iargs, p.Exec)
}

// Check reports whether every VF ADD moved into the pod is still there.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	rec, err := readRecord(recordPath(conf, args))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var missing []string
	for _, a := range rec.VFs {
		has, err := p.HasLink(args.Netns, a.IfName)
		if err != nil {
			return err
		}
		if !has {
			missing = append(missing, a.IfName+" ("+a.PCIAddress+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("VFs missing from the pod: %s", strings.Join(missing, ", "))
	}
	return nil
}

func writeRecord(path string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("recording the pod's VFs: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("recording the pod's VFs: %w", err)
	}
	return nil
}

func readRecord(path string) (record, error) {
	var rec record
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("reading %s: %w", path, err)
	}
	return rec, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// hasLink looks for ifname in the network namespace at nsPath through a
// netlink socket opened there, without moving this thread.
func hasLink(nsPath, ifname string) (bool, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return false, fmt.Errorf("opening network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	_, err = h.LinkByName(ifname)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return false, nil
	}
	return err == nil, err
}
