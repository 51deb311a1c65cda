package kubeconfig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// TestConcurrentMergeAndRemove races creates (Merge) and deletes (Remove)
// of different clusters on one file: every merged context that was not
// removed must be there afterwards, every removed one gone, and the
// user's own context untouched. Without the lock, a Merge that read the
// file before another's write overwrites it and contexts are lost.
func TestConcurrentMergeAndRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	own := clientcmdapi.NewConfig()
	own.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod.example:6443"}
	own.AuthInfos["prod"] = &clientcmdapi.AuthInfo{Token: "t"}
	own.Contexts["prod"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "prod"}
	// Contexts the deleters remove while the creators add theirs.
	for i := range 8 {
		n := ContextName(fmt.Sprintf("old%d", i))
		own.Clusters[n] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
		own.AuthInfos[n] = &clientcmdapi.AuthInfo{Token: "x"}
		own.Contexts[n] = &clientcmdapi.Context{Cluster: n, AuthInfo: n}
	}
	if err := clientcmd.WriteToFile(*own, path); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				name := ContextName(fmt.Sprintf("new%d", i))
				errs <- Merge(ctx, path, Build(name, "https://127.0.0.1:2", []byte("ca"), []byte("cert"), []byte("key")))
			} else {
				errs <- Remove(ctx, path, ContextName(fmt.Sprintf("old%d", i/2)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i += 2 {
		n := ContextName(fmt.Sprintf("new%d", i))
		if got.Contexts[n] == nil || got.Clusters[n] == nil || got.AuthInfos[n] == nil {
			t.Errorf("context %s was lost", n)
		}
	}
	for i := range 8 {
		if n := ContextName(fmt.Sprintf("old%d", i)); got.Contexts[n] != nil || got.Clusters[n] != nil {
			t.Errorf("context %s was not removed (or was written back by a stale merge)", n)
		}
	}
	if got.Contexts["prod"] == nil || got.AuthInfos["prod"].Token != "t" {
		t.Errorf("the user's own context was changed: %+v", got.Contexts["prod"])
	}
	if _, err := os.Stat(lockPath(path)); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// TestLockHeldElsewhere: a lock held by another writer (kubectl, or a
// killed berth) makes Merge wait, then fail saying what to do.
func TestLockHeldElsewhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(lockPath(path), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	saved := LockTimeout
	LockTimeout = 300 * time.Millisecond
	defer func() { LockTimeout = saved }()
	err := Merge(context.Background(), path, Build("berth-x", "https://127.0.0.1:1", nil, nil, nil))
	if err == nil || !contains(err.Error(), "remove "+lockPath(path)) {
		t.Fatalf("Merge under a held lock: %v", err)
	}
	// Released meanwhile: the waiting Merge goes ahead.
	LockTimeout = 5 * time.Second
	go func() { time.Sleep(100 * time.Millisecond); os.Remove(lockPath(path)) }()
	if err := Merge(context.Background(), path, Build("berth-x", "https://127.0.0.1:1", nil, nil, nil)); err != nil {
		t.Fatalf("Merge after the lock was released: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
