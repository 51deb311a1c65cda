package nodeimage

import (
	"os"
	"path/filepath"
	"time"
)

// binaryMaxIdle is how long a compiled binary stays in the tool cache
// (cacheDir/bin/<arch>) after the last build that used it. Every change
// to berth-node's source is a new recipe and a new 150 MB binary; without
// a trim the cache only grows (7 GB on a machine after a week's work).
// Other trees and Kubernetes versions share the cache, so a binary this
// build did not use is kept until it has been idle that long, as the Go
// build cache trims its entries.
const binaryMaxIdle = 7 * 24 * time.Hour

// pruneBinaries marks the binaries a build used (used: their paths) as
// used now and removes the others in the same directories that no build
// has used for binaryMaxIdle. Failures are ignored: the cache is only a
// cache.
func pruneBinaries(used []string, now time.Time) {
	dirs := map[string]bool{}
	keep := map[string]bool{}
	for _, p := range used {
		if p == "" {
			continue
		}
		keep[p] = true
		dirs[filepath.Dir(p)] = true
		_ = os.Chtimes(p, now, now)
	}
	for dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			if keep[path] || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if err != nil || now.Sub(info.ModTime()) < binaryMaxIdle {
				continue
			}
			_ = os.Remove(path)
		}
	}
}
