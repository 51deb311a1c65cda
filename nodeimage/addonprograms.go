package nodeimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"

	"github.com/berth-dev/berth/nodeimage/ociarchive"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// The add-on programs — CoreDNS, MetalLB (controller and speaker) and
// local-path-provisioner — are compiled by one `go build` into one
// multicall binary (addonssrc/main.go.txt) in one work module: all sit
// on client-go and the Kubernetes API libraries (CoreDNS v1.15.0 and
// MetalLB v0.16.2 at v0.37.1; local-path-provisioner asks for older ones
// and gets those), so one module resolves them to one version each, the
// compiler builds those packages once, and the linker writes them once.
// The work module replaces each program's module by its prepared copy
// (coredns.go, metallb.go, and local-path-provisioner's package main made
// importable), carries MetalLB's frr-k8s replacement (replacements in a
// required module are ignored) and starts from all their checksums.
//
// Separately the three binaries were 58 + 67 + 59 MB; every node unpacks
// its pod images at boot (CPU on every create: ~0.18 CPU-s per 60 MB),
// and the node image carries their compressed layers.

// localPathModule is local-path-provisioner, the default StorageClass's
// provisioner; its program is the module's root package.
const localPathModule = "github.com/rancher/local-path-provisioner"

//go:embed addonssrc/main.go.txt
var addonsMain []byte

// addonsJointPins raise a module where the programs' requirements meet
// at versions that do not build together: CoreDNS's dependencies take
// github.com/mdlayher/socket to v0.6, whose API MetalLB's
// github.com/mdlayher/packet v1.0.0 predates; packet's current release
// builds on it (MetalLB uses packet through mdlayher/arp, for layer-2
// announcements — TestLoadBalancer exercises it).
var addonsJointPins = []struct{ path, version string }{
	{"github.com/mdlayher/packet", "v1.2.0"},
}

// addonProgramsRecipe identifies the multicall binary for release r.
func addonProgramsRecipe(r versions.Release) string {
	h := sha256.New()
	fmt.Fprintf(h, "multicall: %s %s local-path %s %v flags %s\n", metallbRecipe(), corednsRecipe(r), versions.LocalPath, addonsJointPins, goFlags)
	h.Write(addonsMain)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// buildAddonPrograms compiles the add-on programs for release r into one
// binary, once per recipe, into cacheDir/bin/<arch>/ and returns its
// path.
func buildAddonPrograms(ctx context.Context, cacheDir string, r versions.Release) (string, error) {
	dir := filepath.Join(cacheDir, "bin", runtime.GOARCH)
	bin := filepath.Join(dir, "addons-"+addonProgramsRecipe(r))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(cacheDir, "addons-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)

	for _, m := range []struct {
		what, module, version, dir string
		prepare                    func(src, dst string) error
	}{
		{"MetalLB", metallbModule, versions.MetalLB, "metallb", prepareMetalLBSource},
		{"CoreDNS", corednsModule, r.CoreDNS, "coredns", prepareCoreDNSSource},
		{"local-path-provisioner", localPathModule, versions.LocalPath, "localpath", prepareLocalPathSource},
	} {
		src, err := downloadModule(ctx, cacheDir, m.module, m.version)
		if err != nil {
			return "", fmt.Errorf("downloading %s %s: %w", m.what, m.version, err)
		}
		if err := m.prepare(src, filepath.Join(work, m.dir)); err != nil {
			return "", fmt.Errorf("preparing %s %s's source: %w", m.what, m.version, err)
		}
	}
	if err := writeAddonsModule(work, r); err != nil {
		return "", fmt.Errorf("writing the add-on programs' build module: %w", err)
	}
	main := filepath.Join(work, "cmd", "addons", "main.go")
	if err := os.MkdirAll(filepath.Dir(main), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(main, addonsMain, 0o644); err != nil {
		return "", err
	}
	// -mod=mod records the versions the modules resolve to together (and
	// any checksum none of them listed).
	tmp := bin + ".tmp"
	if err := runGo(ctx, work, goEnv(false), "build", "-mod=mod", "-ldflags=-s -w", "-o", tmp, "./cmd/addons"); err != nil {
		return "", fmt.Errorf("compiling CoreDNS %s, MetalLB %s and local-path-provisioner %s: %w", r.CoreDNS, versions.MetalLB, versions.LocalPath, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("caching the add-on programs: %w", err)
	}
	return bin, nil
}

// prepareLocalPathSource copies local-path-provisioner's module at src
// into work: its go.mod and go.sum and its root package (the program),
// made importable.
func prepareLocalPathSource(src, work string) error {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := copyFile(filepath.Join(src, f), filepath.Join(work, f)); err != nil {
			return err
		}
	}
	files, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if err := copyFile(f, filepath.Join(work, filepath.Base(f))); err != nil {
			return err
		}
	}
	return makeImportableAs(work, "localpath", "local-path-provisioner")
}

// downloadModule fetches path@version into the module cache and returns
// its (read-only) directory.
func downloadModule(ctx context.Context, cacheDir, path, version string) (string, error) {
	out, err := goOutput(ctx, cacheDir, goEnv(false), "mod", "download", "-json", path+"@"+version)
	if err != nil {
		return "", err
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("%s%v", mod.Error, err)
	}
	return mod.Dir, nil
}

// writeAddonsModule writes work/go.mod, requiring the prepared copies in
// work/metallb, work/coredns and work/localpath, and work/go.sum, the
// union of theirs.
func writeAddonsModule(work string, r versions.Release) error {
	f, err := modfile.Parse("go.mod", nil, nil)
	if err != nil {
		return err
	}
	if err := f.AddModuleStmt("berth.local/addons"); err != nil {
		return err
	}
	goVersion := "1.21"
	var sums []byte
	for _, m := range []struct{ path, version, dir string }{
		{metallbModule, versions.MetalLB, "metallb"},
		{corednsModule, r.CoreDNS, "coredns"},
		{localPathModule, versions.LocalPath, "localpath"},
	} {
		data, err := os.ReadFile(filepath.Join(work, m.dir, "go.mod"))
		if err != nil {
			return err
		}
		mf, err := modfile.Parse(m.dir+"/go.mod", data, nil)
		if err != nil {
			return err
		}
		if mf.Go != nil && semver.Compare("v"+goVersion, "v"+mf.Go.Version) < 0 {
			goVersion = mf.Go.Version
		}
		f.AddNewRequire(m.path, m.version, false)
		if err := f.AddReplace(m.path, "", "./"+m.dir, ""); err != nil {
			return err
		}
		sum, err := os.ReadFile(filepath.Join(work, m.dir, "go.sum"))
		if err != nil {
			return err
		}
		sums = append(sums, sum...)
	}
	if err := f.AddGoStmt(goVersion); err != nil {
		return err
	}
	for _, pin := range addonsJointPins {
		f.AddNewRequire(pin.path, pin.version, true)
	}
	// MetalLB's own replacement, which only a main module's go.mod applies.
	if err := f.AddReplace(frrK8sModule, "", frrK8sModule, frrK8sServed); err != nil {
		return err
	}
	f.Cleanup()
	data, err := f.Format()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "go.sum"), uniqueLines(sums), 0o644)
}

// uniqueLines returns data's lines, each once, in first-seen order.
func uniqueLines(data []byte) []byte {
	seen := map[string]bool{}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || seen[line] {
			continue
		}
		seen[line] = true
		out.WriteString(line + "\n")
	}
	return out.Bytes()
}

// AddonsArchive is the node image's archive of the add-on images: CoreDNS,
// MetalLB's controller and speaker, and local-path-provisioner, under
// their upstream names.
const AddonsArchive = "addons.tar"

// addonsBin is the add-on programs' key in the build's map of compiled
// binaries.
const addonsBin = "addons"

// addonImages are the add-on images: one layer (the multicall binary and
// a link for each program) and an entrypoint each, so the archive and
// containerd hold the layer once and a node unpacks it once.
func addonImages(bin []byte, r versions.Release) []ociarchive.Image {
	files := []ociarchive.File{
		{Path: "addons", Mode: 0o755, Data: bin},
		{Path: "coredns", Link: "addons"},
		{Path: "controller", Link: "addons"},
		{Path: "speaker", Link: "addons"},
		// Where local-path-provisioner's own image has it (the storage
		// manifest runs it by this path).
		{Path: "usr/bin/local-path-provisioner", Link: "/addons"},
	}
	path := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return []ociarchive.Image{
		{Name: r.CoreDNSImage(), Entrypoint: []string{"/coredns"}, Files: files},
		{Name: versions.MetalLBControllerImage, Entrypoint: []string{"/controller"}, Files: files},
		{Name: versions.MetalLBSpeakerImage, Entrypoint: []string{"/speaker"}, Files: files},
		{Name: versions.StorageImage, Env: path, Entrypoint: []string{"/usr/bin/local-path-provisioner"}, Files: files},
	}
}

// addonsArchive writes the OCI archive of the add-on images from the
// binary at path, its layer made by newLayer (nil: gzip).
func addonsArchive(path string, r versions.Release, newLayer func(io.WriterTo) (*ociarchive.Layer, error)) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := ociarchive.WriteArchive(&buf, ociarchive.Options{Layer: newLayer}, addonImages(bin, r)...); err != nil {
		return nil, fmt.Errorf("building the add-on images: %w", err)
	}
	return buf.Bytes(), nil
}
