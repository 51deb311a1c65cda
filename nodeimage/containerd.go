package nodeimage

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/modfile"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// containerd and ctr are one binary in the node image: both are thin
// mains over containerd's importable command packages
// (cmd/containerd/command, cmd/ctr/app) and share nearly all their code,
// so one binary that runs as ctr when called by that name (a link) is
// 39 + 23 MB → 42 MB. ctr only runs for the boot's image imports and
// `berth load`; containerd, the daemon, gains ctr's command definitions.
//
// It is compiled in a work module holding only containerdMain, which
// requires containerd at versions.Containerd with containerd's own
// requirements, so every dependency resolves exactly as containerd's own
// build does. (berth-node cannot take them in: containerd raises grpc,
// OpenTelemetry and protobuf above what older Kubernetes minors build
// with, and the daemon must not carry Kubernetes' package inits.)
//
// The shim stays its own small binary: one runs per pod, and each would
// start the whole daemon's package set.

//go:embed containerdsrc/main.go.txt
var containerdMain []byte

const containerdModule = "github.com/containerd/containerd/v2"

// containerdBin is containerd's key in the build's map of compiled
// binaries.
const containerdBin = "containerd"

// containerdRecipe identifies the containerd+ctr binary.
func containerdRecipe() string {
	h := sha256.New()
	fmt.Fprintf(h, "containerd %s flags %s\n", versions.Containerd, goFlags)
	h.Write(containerdMain)
	return versions.Containerd + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// buildContainerd compiles containerd with ctr, once per recipe, into
// cacheDir/bin/<arch>/ and returns its path.
func buildContainerd(ctx context.Context, cacheDir string) (string, error) {
	return workBuild{What: "containerd " + versions.Containerd, Binary: "containerd-ctr-" + containerdRecipe(), Package: ".",
		Module: containerdModule, Version: versions.Containerd, Prepare: prepareContainerdModule}.build(ctx, cacheDir)
}

// prepareContainerdModule writes into work a module with containerdMain
// whose requirements are containerd's (from its module at src) plus
// containerd itself, and containerd's checksums.
func prepareContainerdModule(src, work string) error {
	path := filepath.Join(src, "go.mod")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	up, err := modfile.Parse(path, data, nil)
	if err != nil {
		return err
	}
	if up.Module == nil || up.Module.Mod.Path != containerdModule {
		return fmt.Errorf("%s is not %s's go.mod", path, containerdModule)
	}
	if len(up.Replace) > 0 {
		return fmt.Errorf("containerd's go.mod now has replace directives, which a module requiring it would not apply")
	}
	f, err := modfile.Parse("go.mod", nil, nil)
	if err != nil {
		return err
	}
	if err := f.AddModuleStmt("berth.local/containerd"); err != nil {
		return err
	}
	if up.Go != nil {
		if err := f.AddGoStmt(up.Go.Version); err != nil {
			return err
		}
	}
	f.AddNewRequire(containerdModule, versions.Containerd, false)
	for _, r := range up.Require {
		f.AddNewRequire(r.Mod.Path, r.Mod.Version, true)
	}
	f.Cleanup()
	out, err := f.Format()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), out, 0o644); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(src, "go.sum"), filepath.Join(work, "go.sum")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "main.go"), containerdMain, 0o644)
}
