package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/load"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
)

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	Cluster string
	Name    string
	// Nodes, when set, maps the snapshot's node names to the cluster's:
	// the snapshot was taken of another cluster with the same layout
	// (CreateFrom). The cluster must have the snapshot's CA.
	Nodes NodeMap
	// Wait is how long to wait for the API server and every node to be
	// Ready after the restore (0: one minute).
	Wait time.Duration
	// Status reports the steps (may be nil).
	Status progress.Reporter
}

// RestoreReport tells what a restore did.
type RestoreReport struct {
	Snapshot string `json:"snapshot"`
	Cluster  string `json:"cluster"`
	// Keys put, deleted and left alone in etcd.
	Puts      int `json:"puts"`
	Deletes   int `json:"deletes"`
	Unchanged int `json:"unchanged"`
	// EtcdApply is how long writing the keys took (the API servers were
	// stopped then, and start again after it).
	EtcdApply time.Duration `json:"etcdApply"`
	// ImagesLoaded are images loaded from Docker again, by node;
	// ImagesMissing those neither the node nor Docker has.
	ImagesLoaded  map[string][]string `json:"imagesLoaded,omitempty"`
	ImagesMissing map[string][]string `json:"imagesMissing,omitempty"`
	Took          time.Duration       `json:"took"`
}

// ErrRolledBack wraps the error of a restore that failed (or was
// interrupted) and was undone: the cluster is as it was before.
var ErrRolledBack = errors.New("the restore was undone; the cluster is as it was before")

// Restore brings a running cluster back to snapshot o.Name.
//
// It first takes a safety snapshot of the cluster as it is; if any step
// after that fails, or ctx is cancelled (SIGINT), the safety snapshot is
// restored (with a context that is not cancelled) and the error wraps
// ErrRolledBack. The node-side steps are themselves never cut short: a
// restore of etcd, once started in a node, runs to its end whatever
// happens to the CLI, and restores in a node take turns, so the rollback
// comes after it.
func Restore(ctx context.Context, p provider.Provider, s Store, o RestoreOptions) (*RestoreReport, error) {
	started := time.Now()
	status := o.Status
	if status == nil {
		status = progress.Discard{}
	}
	if o.Wait == 0 {
		o.Wait = time.Minute
	}
	m, err := s.Get(o.Name)
	if err != nil {
		return nil, err
	}
	t, err := inspect(ctx, p, o.Cluster)
	if err != nil {
		return nil, err
	}
	if err := Compatible(m, t.version, t.nodes, t.ca, o.Nodes); err != nil {
		return nil, err
	}

	safety, err := os.MkdirTemp(s.Dir, ".safety-"+o.Cluster+"-")
	if err != nil {
		return nil, fmt.Errorf("making room for the safety snapshot: %w", err)
	}
	for _, sub := range []string{nodesDir, volumesDir} {
		if err := os.Mkdir(filepath.Join(safety, sub), 0o700); err != nil {
			return nil, err
		}
	}
	keepSafety := false
	defer func() {
		if !keepSafety {
			os.RemoveAll(safety)
		}
	}()
	var safetyManifest *Manifest
	if err := progress.Run(status, "taking a safety snapshot of "+o.Cluster, func() error {
		safetyManifest, err = saveInto(ctx, p, t, safety)
		return err
	}); err != nil {
		return nil, fmt.Errorf("taking the safety snapshot (nothing was changed): %w", err)
	}

	report := &RestoreReport{Snapshot: o.Name, Cluster: o.Cluster}
	err = progress.Run(status, fmt.Sprintf("restoring %s to snapshot %s", o.Cluster, o.Name), func() error {
		if err := apply(ctx, p, t, s.Path(o.Name), m, o.Nodes, report); err != nil {
			return err
		}
		return waitReady(ctx, p, o.Cluster, len(t.nodes), o.Wait)
	})
	if err == nil {
		report.Took = time.Since(started)
		return report, nil
	}

	// Undo: whatever happened to ctx, the rollback runs to its end.
	rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	rbErr := progress.Run(status, "restore failed; rolling "+o.Cluster+" back", func() error {
		if err := apply(rbCtx, p, t, safety, safetyManifest, nil, &RestoreReport{}); err != nil {
			return err
		}
		return waitReady(rbCtx, p, o.Cluster, len(t.nodes), o.Wait)
	})
	if rbErr != nil {
		keepSafety = true
		return nil, fmt.Errorf("restoring snapshot %q: %w; rolling back failed too: %v (the state from before the restore is kept in %s)", o.Name, err, rbErr, safety)
	}
	return nil, fmt.Errorf("restoring snapshot %q: %w: %w", o.Name, err, ErrRolledBack)
}

// apply restores the snapshot in dir (manifest m) into the cluster t,
// whose nodes are the snapshot's renamed by nodes (nil: the same names).
func apply(ctx context.Context, p provider.Provider, t *target, dir string, m *Manifest, nodes NodeMap, report *RestoreReport) error {
	cp := t.controlPlanes[0]
	etcdDB := path.Join(stagingDir, "etcd.db")
	volumeTar := path.Join(stagingDir, "volumes.tar")

	// 1. Copy everything into the nodes, and load the images they lack;
	// nothing changes yet.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return stage(gctx, p, cp, filepath.Join(dir, etcdFile), etcdDB) })
	tops := make(map[string][]string, len(m.Nodes))
	for _, n := range m.Nodes {
		archive := filepath.Join(dir, volumesDir, n.Name+".tar")
		entries, err := topLevel(archive)
		if err != nil {
			return err
		}
		tops[n.Name] = entries
		g.Go(func() error { return stage(gctx, p, nodes.name(n.Name), archive, volumeTar) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Images the snapshot's nodes had and these lack, before any kubelet
	// sees the pods that run them: a kubelet that finds a pod's image
	// missing (ErrImageNeverPull) retries only after a back-off, which
	// the restore would wait out.
	if err := reloadImages(ctx, p, m, nodes, report); err != nil {
		return err
	}

	// 2. Hold the API servers of the other control planes.
	release, err := holdAPIServers(ctx, p, t.controlPlanes[1:])
	if err != nil {
		return err
	}
	defer release()

	// 3. etcd and every node's volumes, in parallel.
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() error {
		var out bytes.Buffer
		if err := p.Exec(gctx, cp, nil, &out, append([]string{berthNode, "snapshot", "restore", etcdDB}, nodes.args()...)...); err != nil {
			return fmt.Errorf("restoring etcd: %w", err)
		}
		var r struct {
			Puts, Deletes, Unchanged int
			ApplyMilliseconds        int64
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			return fmt.Errorf("reading the etcd restore's report %q: %w", out.String(), err)
		}
		report.Puts, report.Deletes, report.Unchanged = r.Puts, r.Deletes, r.Unchanged
		report.EtcdApply = time.Duration(r.ApplyMilliseconds) * time.Millisecond
		return nil
	})
	for _, n := range m.Nodes {
		g.Go(func() error {
			args := append([]string{"sh", "-c", restoreVolumesScript, "_", volumeTar}, tops[n.Name]...)
			if err := p.Exec(gctx, nodes.name(n.Name), nil, nil, args...); err != nil {
				return fmt.Errorf("restoring the volumes of %s: %w", nodes.name(n.Name), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	release()

	// 4. Every kubelet afresh: one that killed a pod since the snapshot
	// will not run its UID again and kube-proxy (berth-node snapshot restart-node).
	g, gctx = errgroup.WithContext(ctx)
	for _, n := range m.Nodes {
		g.Go(func() error {
			if err := p.Exec(gctx, nodes.name(n.Name), nil, nil, berthNode, "snapshot", "restart-node"); err != nil {
				return fmt.Errorf("restarting the kubelet of %s: %w", nodes.name(n.Name), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// holdAPIServers holds the API server, controller manager and scheduler
// of every node in nodes stopped (berth-node snapshot hold; why:
// berth-node's restoreHeld) until release is called; if the CLI dies, the
// holds end with it (their stdin closes).
func holdAPIServers(ctx context.Context, p provider.Provider, nodes []string) (release func(), err error) {
	hold := []string{berthNode, "snapshot", "hold"}
	var writers []*io.PipeWriter
	var done []chan error
	release = func() {
		for _, w := range writers {
			w.Close()
		}
		for _, d := range done {
			<-d
		}
		writers, done = nil, nil
	}
	for _, node := range nodes {
		stdinR, stdinW := io.Pipe()
		outR, outW := io.Pipe()
		d := make(chan error, 1)
		writers, done = append(writers, stdinW), append(done, d)
		go func() {
			err := p.Exec(context.WithoutCancel(ctx), node, stdinR, outW, hold...)
			outW.CloseWithError(fmt.Errorf("hold ended: %v", err))
			d <- err
		}()
		line, err := bufio.NewReader(outR).ReadString('\n')
		go io.Copy(io.Discard, outR)
		if strings.TrimSpace(line) != "held" {
			release()
			return nil, fmt.Errorf("stopping the API server of %s: %v", node, err)
		}
	}
	return release, nil
}

// reloadImages loads again, from Docker, the images a node had when the
// snapshot was taken and lacks now (the node nodes maps it to); images
// Docker lacks too are reported.
func reloadImages(ctx context.Context, p provider.Provider, m *Manifest, nodes NodeMap, report *RestoreReport) error {
	for _, saved := range m.Nodes {
		if len(saved.Images) == 0 {
			continue
		}
		n := Node{Name: nodes.name(saved.Name), Role: saved.Role, Images: saved.Images}
		have, err := loadedImages(ctx, p, n.Name)
		if err != nil {
			return err
		}
		var missing []string
		for _, img := range n.Images {
			if !slices.ContainsFunc(have, func(h Image) bool { return h.Name == img.Name }) {
				missing = append(missing, img.Name)
			}
		}
		for _, img := range missing {
			id, err := p.ImageID(ctx, img)
			if err != nil {
				return err
			}
			if id == "" {
				if report.ImagesMissing == nil {
					report.ImagesMissing = map[string][]string{}
				}
				report.ImagesMissing[n.Name] = append(report.ImagesMissing[n.Name], img)
				continue
			}
			if _, err := load.Images(ctx, p, []string{n.Name}, []string{img}); err != nil {
				return fmt.Errorf("loading %s into %s again: %w", img, n.Name, err)
			}
			if report.ImagesLoaded == nil {
				report.ImagesLoaded = map[string][]string{}
			}
			report.ImagesLoaded[n.Name] = append(report.ImagesLoaded[n.Name], img)
		}
	}
	return nil
}

// waitReady waits for the API server to answer and every node to be
// Ready.
func waitReady(ctx context.Context, p provider.Provider, name string, nodes int, timeout time.Duration) error {
	client, err := cluster.Client(ctx, p, name)
	if err != nil {
		return err
	}
	return cluster.WaitNodesReady(ctx, client, nodes, timeout)
}
