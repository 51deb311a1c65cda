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

// AttachNodes moves every netdevice VF of each node into it: after a
// create started the nodes, and after `berth start` (a restarted
// container has a new network namespace). A node that holds VFs but is
// not running is an error.
func AttachNodes(ctx context.Context, p PIDs, nodes []provider.Node) error {
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
		if pid == 0 {
			errs = append(errs, fmt.Errorf("node %s holds SR-IOV VFs but is not running", n.Name))
			continue
		}
		if err := Attach(ctx, pid, vfs); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ReclaimNodes gives every VF of each node back to the host under its
// own name: before a node is stopped or deleted (a veth stand-in would
// die with the node's namespace, and a real VF would come back under a
// name its driver picks). Nodes that are not running are searched in the
// host's namespace only.
func ReclaimNodes(ctx context.Context, p PIDs, nodes []provider.Node) error {
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
		if err := Reclaim(ctx, []int{pid}, vfs); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}
