package nodeimage

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPruneBinaries(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	old := now.Add(-binaryMaxIdle - time.Hour)
	recent := now.Add(-time.Hour)
	files := map[string]time.Time{
		"berth-node-v1.37.2-used": old,    // used by this build: kept, marked
		"berth-node-v1.37.2-old":  old,    // superseded long ago: removed
		"berth-node-v1.36.3-aaa":  recent, // another version's, used lately: kept
		"addons-partial.tmp":      recent, // kept: a build may be writing it
	}
	for name, mtime := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mtime, mtime)
	}
	used := filepath.Join(dir, "berth-node-v1.37.2-used")
	pruneBinaries([]string{used, ""}, now)
	for name, want := range map[string]bool{"berth-node-v1.37.2-used": true, "berth-node-v1.37.2-old": false, "berth-node-v1.36.3-aaa": true, "addons-partial.tmp": true} {
		_, err := os.Stat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s kept = %v, want %v", name, got, want)
		}
	}
	if info, _ := os.Stat(used); now.Sub(info.ModTime()) > time.Minute {
		t.Errorf("the used binary was not marked as used (mtime %v)", info.ModTime())
	}
}
