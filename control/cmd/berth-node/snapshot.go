package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berth-dev/berth/control/snapshot"
	"github.com/berth-dev/berth/control/supervisor"
)

// Components a restore holds stopped on every control-plane node. The
// API servers, so that no client sees the keyspace half restored; they
// are killed, not terminated: a graceful API server shutdown drains
// watches and requests for seconds, and an API server keeps no state.
// The controller managers and schedulers too, so that they list
// everything afresh when they start again: a running controller keeps
// what it last wrote, and the restored objects are older than that. Found
// in the e2e: the EndpointSlice controller's tracker remembered a newer
// generation of a Service's slice than the restored one, took its cache
// for stale and never synced it again — the Service kept the snapshot's
// pod addresses, which no pod had any more. For another cluster's
// snapshot, objects also keep their keys but change UIDs (the new
// cluster's ReplicaSet coredns-x becomes the snapshot's), which a watching
// controller would see as an update, not as a delete and a create.
var restoreHeld = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

const snapshotUsage = `usage:
  berth-node snapshot save FILE|-      etcd snapshot of this member to FILE (- for stdout)
  berth-node snapshot restore FILE [OLD=NEW...]
                                       restore FILE into the running etcd cluster, holding this node's control plane;
                                       OLD=NEW maps the snapshot's node names to this cluster's (another cluster's snapshot)
  berth-node snapshot hold             hold this node's API server, controller manager and scheduler
                                       stopped until stdin closes
  berth-node snapshot restart-node     restart this node's kubelet and kube-proxy (after a restore)`

// runSnapshot is berth-node snapshot, run by the CLI with docker exec in
// a control-plane node.
func runSnapshot(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, snapshotUsage)
		return 2
	}
	var err error
	switch {
	case args[0] == "save" && len(args) == 2:
		err = snapshotSave(args[1])
	case args[0] == "restore" && len(args) >= 2:
		err = snapshotRestore(args[1], args[2:])
	case args[0] == "hold" && len(args) == 1:
		err = snapshotHold(restoreHeld)
	case args[0] == "restart-node" && len(args) == 1:
		err = restartNode()
	default:
		fmt.Fprintln(os.Stderr, snapshotUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-node snapshot:", err)
		return 1
	}
	return 0
}

func snapshotSave(path string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := snapshot.Client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if path == "-" {
		_, err := snapshot.Save(ctx, c, os.Stdout)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := snapshot.Save(ctx, c, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// restoreReport is what restore prints on stdout, as JSON.
type restoreReport struct {
	Puts      int   `json:"puts"`
	Deletes   int   `json:"deletes"`
	Unchanged int   `json:"unchanged"`
	ApplyMS   int64 `json:"applyMilliseconds"`
}

func snapshotRestore(path string, mapping []string) error {
	nodes, err := snapshot.ParseNodeMap(mapping)
	if err != nil {
		return err
	}
	// Once begun, a restore runs to its end: the CLI that started it may
	// be interrupted or go away, but the keyspace must never be left
	// half written. (A process started by docker exec gets no signal
	// from its client anyway; this covers a stray one, and SIGPIPE on a
	// closed stdout.)
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Restores run one at a time: a rollback started while an
	// interrupted restore still runs waits for it, then undoes it.
	unlock, err := lockFile(restoreLock)
	if err != nil {
		return err
	}
	defer unlock()
	want, err := snapshot.ReadKeys(path)
	if err != nil {
		return err
	}
	c, err := snapshot.Client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	release, err := supervisor.Hold(ctx, supervisor.ControlSocket, 0, restoreHeld...)
	if err != nil {
		return err
	}
	heldAt := time.Now()
	defer release()
	have, err := snapshot.LiveKeys(ctx, c)
	if err != nil {
		return err
	}
	// Another cluster's snapshot: its keys with the node names mapped,
	// the nodes' own keys left as this cluster has them.
	want, err = snapshot.Map(want, have, nodes)
	if err != nil {
		return err
	}
	plan := snapshot.Diff(want, have)
	if err := snapshot.Apply(ctx, c, plan); err != nil {
		return err
	}
	release()
	return json.NewEncoder(os.Stdout).Encode(restoreReport{
		Puts: len(plan.Puts), Deletes: len(plan.Deletes), Unchanged: plan.Unchanged,
		ApplyMS: time.Since(heldAt).Milliseconds(),
	})
}

// restoreLock serialises restores in a node.
const restoreLock = "/run/berth/snapshot.lock"

// lockFile takes an exclusive flock on path, waiting for it.
func lockFile(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// restartNode restarts the node's kubelet and kube-proxy after a restore,
// as the Kubernetes docs advise after an etcd restore: both hold state the
// restore made stale. A kubelet remembers the UIDs of the pods it has
// finished and does not run them again, and a restore brings back pods it
// killed since the snapshot (same UIDs) — left in their restored, stale
// status. kube-proxy then programs the node from a fresh list of the
// restored Services and EndpointSlices.
// Killing them leaves the pods' containers running.
//
// (A copy's NodePort answered by CoreDNS, once blamed on kube-proxy
// here, came from the restored pods' and EndpointSlices' addresses,
// which the copy's nodes give to other pods: snapshot.Map no longer
// restores them into another cluster.)
func restartNode() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release, err := supervisor.Hold(ctx, supervisor.ControlSocket, 0, "kubelet", "kube-proxy")
	if err != nil {
		return err
	}
	release()
	return nil
}

// snapshotHold holds this node's components stopped, prints "held", and
// lets go when its stdin closes (the CLI is done, or gone).
func snapshotHold(components []string) error {
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release, err := supervisor.Hold(ctx, supervisor.ControlSocket, 0, components...)
	if err != nil {
		return err
	}
	defer release()
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
