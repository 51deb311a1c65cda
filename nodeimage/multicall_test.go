package nodeimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/berth-dev/berth/nodeimage/versions"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, text := range files {
		path := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrepareCNISource(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"go.mod": "module github.com/containernetworking/plugins\n", "go.sum": "", "pkg/ip/ip.go": "package ip\n"}
	for _, p := range cniPluginSet {
		files[p.Dir+"/main.go"] = "package main\n\nfunc main() {\n\tcmd()\n}\n"
		files[p.Dir+"/cmd.go"] = "package main\n\nfunc cmd() {}\n"
		files[p.Dir+"/main_test.go"] = "package main\n"
	}
	writeTree(t, src, files)
	work := t.TempDir()
	if err := prepareCNISource(src, work); err != nil {
		t.Fatal(err)
	}
	for _, p := range cniPluginSet {
		got, _ := os.ReadFile(filepath.Join(work, p.Dir, "main.go"))
		if !strings.HasPrefix(string(got), "package "+p.Package+"\n") || !strings.Contains(string(got), "func Main() {") {
			t.Errorf("%s not made importable:\n%s", p.Name, got)
		}
		if !strings.Contains(string(cniMain), `"`+p.Name+`": `) || !strings.Contains(string(cniMain), p.Package+".Main") {
			t.Errorf("cnisrc/main.go.txt does not run %s", p.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "cmd", "berth-cni", "main.go")); err != nil {
		t.Error(err)
	}

	// A plugin that is no longer a package main is an error.
	writeTree(t, src, map[string]string{"plugins/main/bridge/main.go": "package bridge\n\nfunc Run() {}\n"})
	if err := prepareCNISource(src, t.TempDir()); err == nil || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("changed layout: err = %v", err)
	}
}

func TestPrepareContainerdModule(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"go.mod": "module github.com/containerd/containerd/v2\n\ngo 1.26.6\n\nrequire (\n\tgithub.com/urfave/cli/v2 v2.27.7\n\tgoogle.golang.org/grpc v1.80.0 // indirect\n)\n",
		"go.sum": "sums\n",
	})
	work := t.TempDir()
	if err := prepareContainerdModule(src, work); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(work, "go.mod"))
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{containerdModule: versions.Containerd, "github.com/urfave/cli/v2": "v2.27.7", "google.golang.org/grpc": "v1.80.0"}
	for _, r := range f.Require {
		if want[r.Mod.Path] != r.Mod.Version {
			t.Errorf("requires %s %s", r.Mod.Path, r.Mod.Version)
		}
		delete(want, r.Mod.Path)
	}
	if len(want) > 0 || f.Go == nil || f.Go.Version != "1.26.6" {
		t.Errorf("go.mod lacks %v or containerd's go line:\n%s", want, data)
	}
	if sum, _ := os.ReadFile(filepath.Join(work, "go.sum")); string(sum) != "sums\n" {
		t.Errorf("go.sum = %q", sum)
	}
	if main, _ := os.ReadFile(filepath.Join(work, "main.go")); !strings.Contains(string(main), `== "ctr"`) {
		t.Errorf("main.go does not dispatch on ctr")
	}

	writeTree(t, src, map[string]string{"go.mod": "module github.com/containerd/containerd/v2\n\nreplace example.com/a => example.com/b v1.0.0\n"})
	if err := prepareContainerdModule(src, t.TempDir()); err == nil {
		t.Error("containerd's replace directives were ignored silently")
	}
}
