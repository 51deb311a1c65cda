package nodeimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// goTool is a binary compiled with `go install module/pkg@version`.
type goTool struct {
	Name    string
	Package string // path@version
	CGO     bool
	Tags    string
	// Dest is the directory inside the node image.
	Dest string
}

func (t goTool) version() string {
	_, v, _ := strings.Cut(t.Package, "@")
	return v
}

var goTools = []goTool{
	// containerd with ctr is built by buildContainerd.
	{Name: "containerd-shim-runc-v2", Package: "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@" + versions.Containerd, Dest: "/usr/local/bin"},
	// containerd gives sandboxes a seccomp profile; runc must support it.
	{Name: "runc", Package: "github.com/opencontainers/runc@" + versions.Runc, CGO: true, Tags: "seccomp", Dest: "/usr/local/bin"},
}

// toolsFor lists the tools of a release's image compiled as published
// (containerd with ctr, the CNI plugins, CoreDNS, MetalLB and
// local-path-provisioner have builds of their own).
func toolsFor(versions.Release) []goTool {
	return append([]goTool(nil), goTools...)
}

// goFlags are the flags of every compile of the node image's programs.
// Each binary is linked with -s -w (no symbol table, no DWARF), so the
// compiler's DWARF is thrown away at link time: not generating it takes
// a tenth off every compile (containerd, empty build cache, 2 cores:
// 62-64 s → 56 s, twice each). hack/test.sh and hack/conformance.sh
// compile the control module with the same flags so the large Kubernetes
// build cache is shared with the node image's (TestScriptsShareGoFlags).
const goFlags = "-trimpath -gcflags=all=-dwarf=false"

func goEnv(cgo bool) []string {
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS="+goFlags, "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if cgo {
		return append(env, "CGO_ENABLED=1")
	}
	return append(env, "CGO_ENABLED=0")
}

func runGo(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		if _, lookErr := exec.LookPath("go"); lookErr != nil {
			return fmt.Errorf("building the node image needs a Go toolchain (go): install Go 1.26 or newer")
		}
		tail := out.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail)
	}
	return nil
}

// installTool compiles t once per version into the cache and returns the
// binary's path.
func installTool(ctx context.Context, cacheDir string, t goTool) (string, error) {
	dir := filepath.Join(cacheDir, "bin", runtime.GOARCH)
	final := filepath.Join(dir, t.Name+"-"+t.version())
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	gobin, err := os.MkdirTemp(cacheDir, "gobin-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(gobin)
	args := []string{"install", "-ldflags=-s -w"}
	if t.Tags != "" {
		args = append(args, "-tags", t.Tags)
	}
	args = append(args, t.Package)
	env := append(goEnv(t.CGO), "GOBIN="+gobin)
	if err := runGo(ctx, cacheDir, env, args...); err != nil {
		if t.CGO && strings.Contains(err.Error(), "seccomp") {
			return "", fmt.Errorf("compiling %s: %w\n(runc needs libseccomp's headers: apt-get install libseccomp-dev)", t.Name, err)
		}
		return "", fmt.Errorf("compiling %s: %w", t.Name, err)
	}
	built := filepath.Join(gobin, filepath.Base(strings.SplitN(t.Package, "@", 2)[0]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(built, final); err != nil {
		return "", fmt.Errorf("caching %s: %w", t.Name, err)
	}
	return final, nil
}

// buildControl compiles berth-node for release, and pause, from the
// control module.
func buildControl(ctx context.Context, sourceDir, cacheDir string, r versions.Release) (nodeBin, pauseBin string, err error) {
	src, err := sourceHash(sourceDir)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(cacheDir, "bin", runtime.GOARCH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	nodeBin = filepath.Join(dir, "berth-node-"+r.Kubernetes+"-"+src[:16])
	pauseBin = filepath.Join(dir, "pause-"+src[:16])
	major, minor := r.MajorMinor()
	var ldflags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldflags = append(ldflags,
			"-X "+pkg+".gitVersion="+r.Kubernetes,
			"-X "+pkg+".gitMajor="+major,
			"-X "+pkg+".gitMinor="+minor,
			"-X "+pkg+".gitTreeState=clean",
		)
	}
	controlDir := filepath.Join(sourceDir, "control")
	for _, b := range []struct {
		out, pkg, ldflags string
		release           bool
	}{
		{nodeBin, "./cmd/berth-node", "-s -w " + strings.Join(ldflags, " "), true},
		{pauseBin, "./cmd/pause", "-s -w", false},
	} {
		if _, err := os.Stat(b.out); err == nil {
			continue
		}
		args := []string{"build", "-ldflags=" + b.ldflags, "-o", b.out + ".tmp"}
		if b.release {
			modFile, err := buildModFile(ctx, controlDir, cacheDir, r)
			if err != nil {
				return "", "", err
			}
			if modFile != "" {
				args = append(args, "-modfile="+modFile)
			}
			args = append(args, "-tags="+buildTags(r))
		}
		if err := runGo(ctx, controlDir, goEnv(false), append(args, b.pkg)...); err != nil {
			return "", "", fmt.Errorf("compiling %s for Kubernetes %s: %w", b.pkg, r.Kubernetes, err)
		}
		if err := os.Rename(b.out+".tmp", b.out); err != nil {
			return "", "", err
		}
	}
	return nodeBin, pauseBin, nil
}

// workBuild is a program compiled in a work module that berth prepares:
// Prepare fills the (fresh, temporary) directory — from the module cache's
// copy of Module at Version (src), when Module is set — then Package is
// built there into the cache as Binary. What names the program in errors.
type workBuild struct {
	What, Binary, Package string
	Module, Version       string
	Prepare               func(src, work string) error
}

// build compiles b once into cacheDir/bin/<arch>/ and returns its path.
func (b workBuild) build(ctx context.Context, cacheDir string) (string, error) {
	dir := filepath.Join(cacheDir, "bin", runtime.GOARCH)
	final := filepath.Join(dir, b.Binary)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(cacheDir, "work-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	var src string
	if b.Module != "" {
		if src, err = downloadModule(ctx, cacheDir, b.Module, b.Version); err != nil {
			return "", fmt.Errorf("downloading %s: %w", b.What, err)
		}
	}
	if err := b.Prepare(src, work); err != nil {
		return "", fmt.Errorf("preparing %s: %w", b.What, err)
	}
	tmp := final + ".tmp"
	// -mod=mod lets go record what the prepared module resolves to.
	if err := runGo(ctx, work, goEnv(false), "build", "-mod=mod", "-ldflags=-s -w", "-o", tmp, b.Package); err != nil {
		return "", fmt.Errorf("compiling %s: %w", b.What, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("caching %s: %w", b.What, err)
	}
	return final, nil
}
