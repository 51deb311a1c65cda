package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// SaveOptions say what to save and under which name.
type SaveOptions struct {
	Cluster string
	Name    string
	// Replace allows overwriting an existing snapshot of that name.
	Replace bool
}

// Save snapshots a running cluster into the store.
func Save(ctx context.Context, p provider.Provider, s Store, o SaveOptions) (*Manifest, error) {
	if err := ValidateName(o.Name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.Path(o.Name)); err == nil && !o.Replace {
		return nil, fmt.Errorf("snapshot %q exists (delete it first, or save under another name)", o.Name)
	}
	t, err := inspect(ctx, p, o.Cluster)
	if err != nil {
		return nil, err
	}
	dir, err := s.begin(o.Name)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // gone once committed
	m, err := saveInto(ctx, p, t, dir)
	if err != nil {
		return nil, err
	}
	m.Name = o.Name
	if err := s.commit(dir, m, o.Replace); err != nil {
		return nil, fmt.Errorf("storing snapshot %q: %w", o.Name, err)
	}
	return m, nil
}

// saveInto writes every part of a snapshot of t into dir, in parallel.
// Everything is read from the running nodes without stopping anything:
// etcd's snapshot is consistent by itself; a volume written during the
// save is as consistent as a copy of a running disk.
func saveInto(ctx context.Context, p provider.Provider, t *target, dir string) (*Manifest, error) {
	m := &Manifest{
		FormatVersion:     FormatVersion,
		Cluster:           t.cluster,
		KubernetesVersion: t.version,
		Created:           time.Now().UTC().Truncate(time.Second),
		CAFingerprint:     t.ca,
		Nodes:             append([]Node(nil), t.nodes...),
	}
	cp := t.controlPlanes[0]
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		n, err := execToFile(gctx, p, cp, filepath.Join(dir, etcdFile), berthNode, "snapshot", "save", "-")
		if err != nil {
			return fmt.Errorf("saving etcd from %s: %w", cp, err)
		}
		m.EtcdBytes = n
		return nil
	})
	g.Go(func() error {
		if _, err := execToFile(gctx, p, cp, filepath.Join(dir, pkiFile), "tar", "-C", filepath.Dir(nodeconfig.PKIDir), "-cf", "-", filepath.Base(nodeconfig.PKIDir)); err != nil {
			return fmt.Errorf("saving the PKI from %s: %w", cp, err)
		}
		return nil
	})
	volumeBytes := make([]int64, len(m.Nodes))
	for i := range m.Nodes {
		node := &m.Nodes[i]
		g.Go(func() error {
			n, err := execToFile(gctx, p, node.Name, filepath.Join(dir, volumesDir, node.Name+".tar"), saveVolumesCmd...)
			if err != nil {
				return fmt.Errorf("saving the volumes of %s: %w", node.Name, err)
			}
			volumeBytes[i] = n
			cfg, err := p.ReadFile(gctx, node.Name, nodeconfig.Path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, nodesDir, node.Name+".json"), cfg, 0o600); err != nil {
				return err
			}
			node.Images, err = loadedImages(gctx, p, node.Name)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, n := range volumeBytes {
		m.VolumesBytes += n
	}
	return m, nil
}
