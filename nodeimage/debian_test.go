package nodeimage

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dpkgStatus = `Package: busybox
Status: deinstall ok config-files
Version: 1:1.30.1-6

Package: busybox-static
Status: install ok installed
Priority: optional
Description: Standalone rescue shell
 with tons of builtin utilities
Version: 1:1.35.0-4+b3

Package: bash
Status: install ok installed
Version: 5.2.15-2+b7`

func TestPackageVersion(t *testing.T) {
	for pkg, want := range map[string]string{"busybox-static": "1:1.35.0-4+b3", "bash": "5.2.15-2+b7", "busybox": "", "curl": ""} {
		got, ok, err := packageVersion(strings.NewReader(dpkgStatus), pkg)
		if err != nil || got != want || ok != (want != "") {
			t.Errorf("%s: %q %v %v, want %q", pkg, got, ok, err, want)
		}
	}
	for v, want := range map[string]string{"1:1.35.0-4+b3": "1.35.0", "5.2.15-2+b7": "5.2.15", "1.0": "1.0", "2:1.2-3-4": "1.2-3"} {
		if got := UpstreamVersion(v); got != want {
			t.Errorf("UpstreamVersion(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestDebianTreeDir(t *testing.T) {
	a := DebianTree{Prefix: "rootfs", Mirror: "http://mirror.invalid/debian", Packages: []string{"a", "b"}}
	b := a
	b.Version = "users-v1"
	if a.Dir("/c") == b.Dir("/c") || a.Dir("/c") != a.Dir("/c") {
		t.Error("the cache directory does not follow the inputs")
	}
	if filepath.Dir(a.Dir("/c")) != "/c" || !strings.HasPrefix(filepath.Base(a.Dir("/c")), "rootfs-") {
		t.Errorf("Dir = %s", a.Dir("/c"))
	}
}

// The node image's base tree is a DebianTree: the same inputs name the
// same cache directory, so the two never rebuild each other's tree.
func TestDebianTreeMatchesTheNodeBase(t *testing.T) {
	cache := t.TempDir()
	const mirror = "http://mirror.invalid/debian"
	tree := DebianTree{Prefix: "rootfs", Mirror: mirror, Packages: Packages, Prune: pruned}
	if err := os.MkdirAll(tree.Dir(cache), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree.Dir(cache), completeMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := baseRootfs(context.Background(), cache, mirror, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || got != tree.Dir(cache) {
		t.Errorf("baseRootfs = %s, %v; DebianTree.Dir = %s", got, err, tree.Dir(cache))
	}
	if ensured, err := tree.Ensure(context.Background(), cache, nil); err != nil || ensured != got {
		t.Errorf("Ensure = %s, %v", ensured, err)
	}
}
