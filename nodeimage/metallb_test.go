package nodeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/nodeimage/versions"
)

func TestMakeImportable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.go", "// Copyright\n\npackage main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(helper())\n}\n")
	write("helper.go", "package main\n\nfunc helper() string { return \"main\" }\n")
	if err := makeImportable(dir, "speaker"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "main.go"))
	if !strings.Contains(string(got), "package speaker\n") || !strings.Contains(string(got), "func Main() {") || strings.Contains(string(got), "func main()") {
		t.Errorf("main.go not rewritten:\n%s", got)
	}
	helper, _ := os.ReadFile(filepath.Join(dir, "helper.go"))
	if !strings.HasPrefix(string(helper), "package speaker\n") || !strings.Contains(string(helper), `return "main"`) {
		t.Errorf("helper.go rewritten wrongly:\n%s", helper)
	}

	// A layout berth does not know is an error, not a silent mis-build.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "run.go"), []byte("package main\n\nfunc run() {}\n"), 0o644)
	if err := makeImportable(other, "controller"); err == nil {
		t.Error("a package without func main() was accepted")
	}
}

func TestEditMetalLBModule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "go.mod")
	os.WriteFile(path, []byte("module go.universe.tf/metallb\n\ngo 1.26.0\n\ntoolchain go1.26.9\n\nrequire github.com/metallb/frr-k8s v0.0.27\n"), 0o644)
	if err := editMetalLBModule(path); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if strings.Contains(string(got), "toolchain") {
		t.Errorf("toolchain line kept:\n%s", got)
	}
	if !strings.Contains(string(got), "replace github.com/metallb/frr-k8s => github.com/metallb/frr-k8s "+frrK8sServed) {
		t.Errorf("frr-k8s not replaced:\n%s", got)
	}
	os.WriteFile(path, []byte("module example.com/other\n"), 0o644)
	if err := editMetalLBModule(path); err == nil {
		t.Error("another module's go.mod was edited")
	}
}

// The add-on images share one layer: the archive holds it once.
func TestAddonImagesShareTheirLayer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "addons")
	os.WriteFile(bin, bytes.Repeat([]byte("addons"), 1000), 0o755)
	r := versions.Default()
	data, err := addonsArchive(bin, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs := 0
	var index struct {
		Manifests []struct{ Annotations map[string]string }
	}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(h.Name, "blobs/sha256/") && h.Typeflag == tar.TypeReg {
			blobs++
		}
		if h.Name == "index.json" {
			if err := json.NewDecoder(tr).Decode(&index); err != nil {
				t.Fatal(err)
			}
		}
	}
	// one layer, four configs, four manifests
	if blobs != 9 {
		t.Errorf("archive holds %d blobs, want 9", blobs)
	}
	var names []string
	for _, m := range index.Manifests {
		names = append(names, m.Annotations["io.containerd.image.name"])
	}
	want := []string{r.CoreDNSImage(), versions.MetalLBControllerImage, versions.MetalLBSpeakerImage, versions.StorageImage}
	if !slices.Equal(names, want) {
		t.Errorf("images = %v, want %v", names, want)
	}
}

// Each image runs the multicall binary by the name its program is
// dispatched on (addonssrc/main.go.txt), at the path its manifest uses.
func TestAddonImagesEntrypoints(t *testing.T) {
	for _, img := range addonImages([]byte("x"), versions.Default()) {
		if len(img.Entrypoint) != 1 {
			t.Fatalf("%s: entrypoint %v", img.Name, img.Entrypoint)
		}
		entry := strings.TrimPrefix(img.Entrypoint[0], "/")
		found := false
		for _, f := range img.Files {
			if f.Path == entry {
				found = f.Link == "addons" || f.Link == "/addons"
			}
		}
		if !found {
			t.Errorf("%s: %s is not a link to the multicall binary", img.Name, img.Entrypoint[0])
		}
		if name := filepath.Base(entry); !bytes.Contains(addonsMain, []byte(`"`+name+`":`)) {
			t.Errorf("%s: the multicall binary has no program %q", img.Name, name)
		}
	}
}

// TestBuildAddonPrograms compiles CoreDNS, MetalLB and local-path-provisioner from the module
// proxy (minutes, and network): only when BERTH_TEST_ADDONS_CACHE names a
// cache directory.
func TestBuildAddonPrograms(t *testing.T) {
	cache := os.Getenv("BERTH_TEST_ADDONS_CACHE")
	if cache == "" {
		t.Skip("set BERTH_TEST_ADDONS_CACHE to a cache directory to compile MetalLB and CoreDNS")
	}
	bin, err := buildAddonPrograms(context.Background(), cache, versions.Default())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", bin, st.Size())
	// Each program starts (no flag registered twice, no init-time
	// conflict between the four): asked for its version or help, it
	// exits without error.
	for _, args := range [][]string{{"coredns", "-version"}, {"local-path-provisioner", "--version"}, {"controller", "-help"}, {"speaker", "-help"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil && !(strings.HasSuffix(args[1], "help") && strings.Contains(string(out), "Usage")) {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}
