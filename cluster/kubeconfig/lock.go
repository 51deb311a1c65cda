package kubeconfig

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// LockTimeout bounds how long Merge and Remove wait for another writer's
// lock on the kubeconfig file.
var LockTimeout = 20 * time.Second

// lockPath is the lock file of a kubeconfig: the one client-go's
// clientcmd.ModifyConfig (so `kubectl config ...`) and kind take, so
// berth, kubectl and kind never interleave writes to one file.
func lockPath(path string) string { return path + ".lock" }

// lock takes the kubeconfig's lock file, waiting (until ctx ends or
// LockTimeout passes) while another process holds it, and returns its
// release.
//
// Written here rather than reused: clientcmd's lockFile and unlockFile
// are unexported, and clientcmd.ModifyConfig (the exported entry point
// that takes the lock) reads the file only after the caller computed its
// new config — a merge that read the file before the lock would delete
// contexts another writer added meanwhile. The protocol is clientcmd's:
// create "<file>.lock" with O_EXCL, remove it when done. Unlike clientcmd,
// which fails at once when the lock is held, berth retries: two creates
// finishing together are normal.
func lock(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	ctx, cancel := context.WithTimeout(ctx, LockTimeout)
	defer cancel()
	name := lockPath(path)
	delay := 5 * time.Millisecond
	for {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("locking kubeconfig %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("kubeconfig %s is locked by another process (%s exists): wait for the other berth or kubectl to finish; if none is running, the lock is stale (a killed writer): remove %s and retry", path, name, name)
			}
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}
