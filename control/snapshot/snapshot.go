// Package snapshot saves a control plane's etcd and restores it into the
// running etcd cluster, from inside a control-plane node (berth-node
// snapshot save|restore, run by the CLI with docker exec).
//
// Save is etcd's own snapshot API (one member's consistent copy of the
// whole keyspace, a bbolt file etcdutl can also read).
//
// Restore is logical, not physical: the snapshot's keys are read with
// etcd's storage library and written into the running cluster through its
// API — the keys that differ are put, the keys the snapshot lacks are
// deleted — while every API server is held stopped. The usual physical
// restore (etcdutl snapshot restore on every member, then start them
// with new data directories) rewinds the revision, which is why the
// Kubernetes docs pair it with --bump-revision and --mark-compacted so
// that no watch resumes from a revision that now means something else.
// Writing through the API never rewinds: each change gets a revision
// above anything a client has seen, every member stays in its raft
// cluster (no WAL, membership or data directory is rewritten), and a
// client resuming a watch either receives the changes as events or is
// told its revision is too old and relists. Unchanged keys keep their
// revisions, so the objects the restore does not change are not even
// touched. On a cluster of a few hundred objects it takes milliseconds;
// the API servers' restart dominates.
package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"

	cc "github.com/berth-dev/berth/control/componentconfig"
)

// Client returns an etcd client for the node's local member, configured
// by componentconfig.EtcdClientConfig.
func Client(ctx context.Context) (*clientv3.Client, error) {
	endpoints, tlsConfig, err := cc.EtcdClientConfig()
	if err != nil {
		return nil, fmt.Errorf("configuring the etcd client: %w", err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsConfig,
		Context:     ctx,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %v: %w", endpoints, err)
	}
	return c, nil
}

// Save writes a snapshot of the local etcd member to w and returns its
// size.
func Save(ctx context.Context, c *clientv3.Client, w io.Writer) (int64, error) {
	rc, err := c.Maintenance.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("taking an etcd snapshot: %w", err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("reading the etcd snapshot: %w", err)
	}
	return n, nil
}

// ReadKeys returns the live keys of an etcd snapshot file (their latest
// revision; deleted keys are absent), sorted by key. The file is not
// changed: etcd's storage opens a copy.
func ReadKeys(path string) ([]*mvccpb.KeyValue, error) {
	tmp, err := os.MkdirTemp("", "berth-snapshot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	db := filepath.Join(tmp, "db")
	if err := copyFile(path, db); err != nil {
		return nil, fmt.Errorf("copying the snapshot %s: %w", path, err)
	}
	be := backend.NewDefaultBackend(zap.NewNop(), db)
	defer be.Close()
	// The store attaches leased keys to a lessor as it loads them; no
	// lease is ever granted or expires here, so etcd's inert lessor does.
	st := mvcc.NewStore(zap.NewNop(), be, &lease.FakeLessor{LeaseSet: map[lease.LeaseID]struct{}{}}, mvcc.StoreConfig{})
	defer st.Close()
	txn := st.Read(mvcc.ConcurrentReadTxMode, traceutil.TODO())
	defer txn.End()
	// An empty, non-nil end is mvcc's "every key from here on".
	res, err := txn.Range(context.Background(), []byte{0}, []byte{}, mvcc.RangeOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the keys of snapshot %s: %w", path, err)
	}
	return res.KVs, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CompactRevKey is where kube-apiserver's compactor keeps its own
// bookkeeping (a compare-and-swap on its version): a restore leaves it as
// it is.
const CompactRevKey = "compact_rev_key"

// ephemeral reports whether a key is left out of a restore: keys attached
// to a lease (Events, the API servers' endpoint leases) live only as long
// as their lease, which a snapshot cannot carry over, and the compactor's
// bookkeeping belongs to the running cluster.
func ephemeral(kv *mvccpb.KeyValue) bool {
	return kv.Lease != 0 || string(kv.Key) == CompactRevKey
}

// Plan is what turns the running keyspace into the snapshot's.
type Plan struct {
	// Puts are the snapshot's keys that are missing or different now.
	Puts []*mvccpb.KeyValue
	// Deletes are the keys the snapshot does not have.
	Deletes [][]byte
	// Unchanged counts the keys left alone.
	Unchanged int
}

// Diff plans the restore of want (a snapshot's keys) over have (the
// running cluster's). Ephemeral keys on either side are left alone.
func Diff(want, have []*mvccpb.KeyValue) Plan {
	current := make(map[string]*mvccpb.KeyValue, len(have))
	for _, kv := range have {
		if !ephemeral(kv) {
			current[string(kv.Key)] = kv
		}
	}
	var p Plan
	for _, kv := range want {
		if ephemeral(kv) {
			continue
		}
		cur, ok := current[string(kv.Key)]
		delete(current, string(kv.Key))
		if ok && bytes.Equal(cur.Value, kv.Value) {
			p.Unchanged++
			continue
		}
		p.Puts = append(p.Puts, kv)
	}
	for _, kv := range have {
		if _, ok := current[string(kv.Key)]; ok {
			p.Deletes = append(p.Deletes, kv.Key)
		}
	}
	return p
}

// MaxTxnOps is etcd's default limit of operations in one transaction
// (--max-txn-ops).
const MaxTxnOps = 128

// Apply carries out a plan: every put, then every delete, in transactions
// of at most MaxTxnOps operations.
func Apply(ctx context.Context, kv clientv3.KV, p Plan) error {
	var ops []clientv3.Op
	for _, k := range p.Puts {
		ops = append(ops, clientv3.OpPut(string(k.Key), string(k.Value)))
	}
	for _, k := range p.Deletes {
		ops = append(ops, clientv3.OpDelete(string(k)))
	}
	for len(ops) > 0 {
		n := min(len(ops), MaxTxnOps)
		if _, err := kv.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return fmt.Errorf("writing %d keys to etcd: %w", n, err)
		}
		ops = ops[n:]
	}
	return nil
}

// LiveKeys returns every key of the running etcd cluster.
func LiveKeys(ctx context.Context, kv clientv3.KV) ([]*mvccpb.KeyValue, error) {
	resp, err := kv.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		return nil, fmt.Errorf("reading etcd's keys: %w", err)
	}
	return resp.Kvs, nil
}
