package sriov

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Namespaces are reached through netlink handles opened inside them
// (netlink.NewHandleAt opens its socket in the namespace on a locked OS
// thread and switches that thread back), so no goroutine of berth's ever
// runs in another network namespace and nothing here calls netns.Set.

// DefaultRouteInterfaces lists the devices of the default routes (IPv4
// and IPv6) of the main routing table of the caller's namespace.
func DefaultRouteInterfaces() ([]string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	seen := map[int]bool{}
	var names []string
	addIndex := func(index int) {
		if index == 0 || seen[index] {
			return
		}
		seen[index] = true
		if l, err := netlink.LinkByIndex(index); err == nil {
			names = append(names, l.Attrs().Name)
		}
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		addIndex(r.LinkIndex)
		for _, hop := range r.MultiPath {
			addIndex(hop.LinkIndex)
		}
	}
	return names, nil
}

// namespace is an open network namespace and a netlink handle in it.
type namespace struct {
	name string // for messages
	ns   netns.NsHandle
	h    *netlink.Handle
	// node is whether this is a node's own namespace, where a VF keeps
	// its host name (a pod's may have it as net1).
	node bool
}

func openNamespace(name, path string, node bool) (*namespace, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening the network namespace of %s: %w", name, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("opening netlink in the network namespace of %s: %w", name, err)
	}
	return &namespace{name: name, ns: ns, h: h, node: node}, nil
}

func (n *namespace) Close() {
	n.h.Close()
	n.ns.Close()
}

func hostNamespace() (*namespace, error) {
	// The process's namespace, whichever thread runs this.
	return openNamespace("the host", fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), false)
}

// usableMAC is a MAC that identifies a VF: not empty, not all zero
// (some drivers leave VF MACs unset until one is assigned).
func usableMAC(mac string) (net.HardwareAddr, bool) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, false
	}
	for _, b := range hw {
		if b != 0 {
			return hw, true
		}
	}
	return nil, false
}

// find looks for a VF's netdev: by MAC, and by its host name where the
// VF keeps that name (byName). nil when it is not there.
func (n *namespace) find(vf nodeconfig.VF, byName bool) (netlink.Link, error) {
	links, err := n.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing the interfaces of %s: %w", n.name, err)
	}
	var byMAC []netlink.Link
	if hw, ok := usableMAC(vf.MAC); ok {
		for _, l := range links {
			if strings.EqualFold(l.Attrs().HardwareAddr.String(), hw.String()) {
				byMAC = append(byMAC, l)
			}
		}
	}
	if len(byMAC) == 1 {
		return byMAC[0], nil
	}
	// No MAC, or several links with it (a VF and its peer, a bridge):
	// the name decides.
	if byName || len(byMAC) > 1 {
		candidates := links
		if len(byMAC) > 1 {
			candidates = byMAC
		}
		for _, l := range candidates {
			if l.Attrs().Name == vf.Interface {
				return l, nil
			}
		}
	}
	return nil, nil
}

func netdevVFs(vfs []nodeconfig.VF) []nodeconfig.VF {
	var out []nodeconfig.VF
	for _, vf := range vfs {
		if vf.Mode == nodeconfig.SRIOVModeNetdevice && vf.Interface != "" {
			out = append(out, vf)
		}
	}
	return out
}

func describe(vf nodeconfig.VF) string {
	return fmt.Sprintf("VF %s (%s of %s)", vf.Interface, vf.PCIAddress, vf.PF)
}

// Attach moves each netdevice VF of vfs from the host's network
// namespace into that of process pid (a node container's init), under
// its host name and with its MAC, and sets it up. A VF already there is
// left as it is, so Attach can be repeated; one that the kernel gave
// back to the host under another name (its namespace died) is renamed
// first.
func Attach(ctx context.Context, pid int, vfs []nodeconfig.VF) error {
	vfs = netdevVFs(vfs)
	if len(vfs) == 0 {
		return nil
	}
	host, err := hostNamespace()
	if err != nil {
		return err
	}
	defer host.Close()
	node, err := openNamespace(fmt.Sprintf("process %d", pid), fmt.Sprintf("/proc/%d/ns/net", pid), true)
	if err != nil {
		return err
	}
	defer node.Close()
	if node.ns.Equal(host.ns) {
		return fmt.Errorf("process %d is in the host's network namespace: refusing to attach VFs to it", pid)
	}
	for _, vf := range vfs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := attach(host, node, vf); err != nil {
			return fmt.Errorf("attaching %s to process %d: %w", describe(vf), pid, err)
		}
	}
	return nil
}

func attach(host, node *namespace, vf nodeconfig.VF) error {
	link, err := host.find(vf, true)
	if err != nil {
		return err
	}
	if link == nil {
		in, err := node.find(vf, true)
		if err != nil {
			return err
		}
		if in == nil {
			return fmt.Errorf("it is in neither the host's network namespace nor the node's (is another program using it?)")
		}
		link = in // attached before: make sure it is up
	} else {
		if err := host.h.LinkSetDown(link); err != nil {
			return fmt.Errorf("setting %s down: %w", link.Attrs().Name, err)
		}
		if link.Attrs().Name != vf.Interface {
			if err := host.h.LinkSetName(link, vf.Interface); err != nil {
				return fmt.Errorf("renaming %s back to %s: %w", link.Attrs().Name, vf.Interface, err)
			}
		}
		if err := host.h.LinkSetNsFd(link, int(node.ns)); err != nil {
			return fmt.Errorf("moving it into the node's network namespace: %w", err)
		}
		if link, err = node.h.LinkByName(vf.Interface); err != nil {
			return fmt.Errorf("finding it in the node's network namespace: %w", err)
		}
	}
	if err := node.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting it up in the node: %w", err)
	}
	return nil
}

// Reclaim moves each netdevice VF of vfs back into the caller's (the
// host's) network namespace under its host name, set down, wherever it
// is: the namespace of one of pids (node containers' init processes; 0
// for a stopped one) or of any process below them (a pod inside a node,
// where the VF may be called net1, found by its MAC). A VF already in the
// host, given back by the kernel under another name, is renamed. Reclaim
// does what it can and returns every failure.
//
// Real VFs come back to the host by themselves when their namespace is
// destroyed, but veth stand-ins are destroyed with it: call Reclaim
// before a node container stops or is deleted.
func Reclaim(ctx context.Context, pids []int, vfs []nodeconfig.VF) error {
	vfs = netdevVFs(vfs)
	if len(vfs) == 0 {
		return nil
	}
	host, err := hostNamespace()
	if err != nil {
		return err
	}
	defer host.Close()
	spaces, err := namespacesBelow(pids, host)
	defer func() {
		for _, ns := range spaces {
			ns.Close()
		}
	}()
	if err != nil {
		return err
	}
	var errs []error
	for _, vf := range vfs {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := reclaim(host, spaces, vf); err != nil {
			errs = append(errs, fmt.Errorf("giving %s back to the host: %w", describe(vf), err))
		}
	}
	return errors.Join(errs...)
}

func reclaim(host *namespace, spaces []*namespace, vf nodeconfig.VF) error {
	for _, ns := range spaces {
		link, err := ns.find(vf, ns.node)
		if err != nil {
			return err
		}
		if link == nil {
			continue
		}
		if err := ns.h.LinkSetDown(link); err != nil {
			return fmt.Errorf("setting %s down in %s: %w", link.Attrs().Name, ns.name, err)
		}
		// A temporary name, so that neither the VF's name in the
		// namespace it leaves nor its host name being taken in the
		// host stops the move.
		tmp := tempName(vf.PCIAddress)
		if err := ns.h.LinkSetName(link, tmp); err != nil {
			return fmt.Errorf("renaming %s in %s: %w", link.Attrs().Name, ns.name, err)
		}
		if err := ns.h.LinkSetNsFd(link, int(host.ns)); err != nil {
			return fmt.Errorf("moving %s out of %s: %w", tmp, ns.name, err)
		}
		moved, err := host.h.LinkByName(tmp)
		if err != nil {
			return fmt.Errorf("finding %s in the host: %w", tmp, err)
		}
		if err := host.h.LinkSetName(moved, vf.Interface); err != nil {
			return fmt.Errorf("it is back in the host as %s, but renaming it to %s failed (is the name taken?): %w", tmp, vf.Interface, err)
		}
		return nil
	}
	link, err := host.find(vf, true)
	if err != nil {
		return err
	}
	if link == nil {
		return fmt.Errorf("it is in none of the nodes' namespaces, nor in the host's")
	}
	if link.Attrs().Name != vf.Interface {
		if err := host.h.LinkSetDown(link); err != nil {
			return fmt.Errorf("setting %s down: %w", link.Attrs().Name, err)
		}
		if err := host.h.LinkSetName(link, vf.Interface); err != nil {
			return fmt.Errorf("renaming %s back to %s: %w", link.Attrs().Name, vf.Interface, err)
		}
	}
	return nil
}

// tempName is a short interface name (at most 15 bytes) for a VF while
// it moves.
func tempName(pci string) string {
	h := fnv.New32a()
	h.Write([]byte(pci))
	return fmt.Sprintf("berth%08x", h.Sum32())
}

// namespacesBelow opens the network namespaces of pids and of every
// process below them, once each (namespaces are told apart by device
// and inode), leaving out the host's. The namespaces of pids come first
// and are marked as nodes'.
func namespacesBelow(pids []int, host *namespace) ([]*namespace, error) {
	children, err := processTree()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{host.ns.UniqueId(): true}
	var spaces []*namespace
	open := func(pid int, node bool) {
		ns, err := openNamespace(fmt.Sprintf("process %d", pid), fmt.Sprintf("/proc/%d/ns/net", pid), node)
		if err != nil {
			return // the process is gone, or a kernel thread
		}
		if id := ns.ns.UniqueId(); seen[id] {
			ns.Close()
			return
		}
		seen[ns.ns.UniqueId()] = true
		spaces = append(spaces, ns)
	}
	for _, pid := range pids {
		if pid > 0 { // 0: a container that is not running
			open(pid, true)
		}
	}
	queue := append([]int(nil), pids...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, child := range children[pid] {
			open(child, false)
			queue = append(queue, child)
		}
	}
	// None at all (the nodes are stopped): the VFs can only be in the
	// host, where Reclaim still gives them their names back.
	return spaces, nil
}

// processTree maps each process to its children, from /proc/*/stat.
func processTree() (map[int][]int, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		pid, err1 := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		ppid, err2 := strconv.Atoi(fields[1])
		if err1 != nil || err2 != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	return children, nil
}
