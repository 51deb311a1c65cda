package snapshot

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func kv(key, value string, lease int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), Lease: lease}
}

func keys[T any](items []T, key func(T) string) []string {
	var out []string
	for _, it := range items {
		out = append(out, key(it))
	}
	slices.Sort(out)
	return out
}

func TestDiff(t *testing.T) {
	want := []*mvccpb.KeyValue{
		kv("/registry/a", "1", 0),
		kv("/registry/b", "2", 0),
		kv("/registry/c", "3", 0),
		kv("/registry/events/e1", "old event", 7),
		kv(CompactRevKey, "5", 0),
	}
	have := []*mvccpb.KeyValue{
		kv("/registry/a", "1", 0),       // unchanged
		kv("/registry/b", "changed", 0), // put back
		kv("/registry/d", "new", 0),     // deleted
		kv("/registry/events/e2", "new event", 9),
		kv(CompactRevKey, "9", 0),
	}
	p := Diff(want, have)
	if got := keys(p.Puts, func(k *mvccpb.KeyValue) string { return string(k.Key) }); !slices.Equal(got, []string{"/registry/b", "/registry/c"}) {
		t.Errorf("puts = %v", got)
	}
	if got := keys(p.Deletes, func(k []byte) string { return string(k) }); !slices.Equal(got, []string{"/registry/d"}) {
		t.Errorf("deletes = %v", got)
	}
	if p.Unchanged != 1 {
		t.Errorf("unchanged = %d", p.Unchanged)
	}
}

func freeURL(t *testing.T) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}
}

// startEtcd runs a one-member etcd in the test, as the node runs it.
func startEtcd(t *testing.T) *clientv3.Client {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Logger, cfg.LogLevel = "zap", "error"
	client, peer := freeURL(t), freeURL(t)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ListenMetricsUrls = nil
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not start")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Save, change the keyspace, restore: the keyspace is the saved one
// again, leased keys are left alone, and the revision only grows.
func TestSaveRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := startEtcd(t)
	for i := range 300 {
		if _, err := c.Put(ctx, fmt.Sprintf("/registry/configmaps/default/cm%03d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "/registry/deployments/default/web", "deployment"); err != nil {
		t.Fatal(err)
	}
	lease, err := c.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/events/default/e1", "event", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "/registry/configmaps/default/cm299"); err != nil {
		t.Fatal(err)
	}
	before, err := LiveKeys(ctx, c)
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "etcd.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Save(ctx, c, f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// Change things after the save.
	if _, err := c.Delete(ctx, "/registry/deployments/default/web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/configmaps/default/cm000", "changed"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/namespaces/added", "ns"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/registry/events/default/e2", "event 2", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	revBefore, err := c.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}

	want, err := ReadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(before) {
		t.Fatalf("the snapshot has %d keys, the cluster had %d", len(want), len(before))
	}
	have, err := LiveKeys(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	plan := Diff(want, have)
	if len(plan.Puts) != 2 || len(plan.Deletes) != 1 {
		t.Fatalf("plan: %d puts, %d deletes; want 2 and 1", len(plan.Puts), len(plan.Deletes))
	}
	if err := Apply(ctx, c, plan); err != nil {
		t.Fatal(err)
	}
	after, err := LiveKeys(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, k := range after {
		got[string(k.Key)] = string(k.Value)
		if k.ModRevision <= 0 {
			t.Errorf("%s has no revision", k.Key)
		}
	}
	for _, k := range before {
		if got[string(k.Key)] != string(k.Value) {
			t.Errorf("%s = %q after the restore, want %q", k.Key, got[string(k.Key)], k.Value)
		}
		delete(got, string(k.Key))
	}
	// Only the leased key written after the save is left (ephemeral).
	if len(got) != 1 || got["/registry/events/default/e2"] == "" {
		t.Errorf("keys not in the snapshot after the restore: %v", got)
	}
	for _, k := range after {
		if string(k.Key) == "/registry/deployments/default/web" && k.ModRevision <= revBefore.Header.Revision {
			t.Errorf("a restored key got revision %d, not above the cluster's %d", k.ModRevision, revBefore.Header.Revision)
		}
	}
}
