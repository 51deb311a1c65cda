package sriov

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// PIDs finds the init process of a node container (provider.Provider).
type PIDs interface {
	NodePID(ctx context.Context, name string) (int, error)
}

// NodeVFs returns the VFs a node container holds, from its LabelSRIOV.
func NodeVFs(n provider.Node) ([]nodeconfig.VF, error) {
	vfs, err := nodeconfig.ParseVFLabel(n.Labels[nodeconfig.LabelSRIOV])
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return vfs, nil
}

// eachNodeWithVFs calls fn with the init PID (0: not running) and the VFs
// of every node that holds any, and joins what fails.
func eachNodeWithVFs(ctx context.Context, p PIDs, nodes []provider.Node, fn func(pid int, vfs []nodeconfig.VF) error) error {
	var errs []error
	for _, n := range nodes {
		vfs, err := NodeVFs(n)
		if err != nil || len(vfs) == 0 {
			errs = append(errs, err)
			continue
		}
		pid, err := p.NodePID(ctx, n.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := fn(pid, vfs); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// AttachNodes moves every netdevice VF of each node into it: after a
// create started the nodes, and after `berth start` (a restarted
// container has a new network namespace). A node that holds VFs but is
// not running is an error.
func AttachNodes(ctx context.Context, p PIDs, nodes []provider.Node) error {
	return eachNodeWithVFs(ctx, p, nodes, func(pid int, vfs []nodeconfig.VF) error {
		if pid == 0 {
			return errors.New("it holds SR-IOV VFs but is not running")
		}
		return Attach(ctx, pid, vfs)
	})
}

// ReclaimNodes gives every VF of each node back to the host under its
// own name: before a node is stopped or deleted (a veth stand-in would
// die with the node's namespace, and a real VF would come back under a
// name its driver picks). Nodes that are not running are searched in the
// host's namespace only.
func ReclaimNodes(ctx context.Context, p PIDs, nodes []provider.Node) error {
	return eachNodeWithVFs(ctx, p, nodes, func(pid int, vfs []nodeconfig.VF) error {
		return Reclaim(ctx, []int{pid}, vfs)
	})
}
