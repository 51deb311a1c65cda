package nodeimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/modfile"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// local-path-provisioner (the default StorageClass) is a small program on
// top of client-go. Compiled as published, its module pins client-go and
// the rest of the Kubernetes libraries at its own versions, so a first
// build compiles them a second time beside berth-node (1 min 51 s on a
// fresh 2-core machine). It is compiled instead in a module made from the
// control module's go.mod plus a requirement on local-path-provisioner:
// every library it shares with berth-node resolves to berth-node's version,
// which is newer than the one it asks for, and comes from the build cache
// berth-node's compile has just filled (9 packages left to compile).
const localPathModule = "github.com/rancher/local-path-provisioner"

// localPathRecipe identifies the binary: its version, the control module's
// go.mod it is resolved against, and the flags.
func localPathRecipe(controlMod []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "local-path %s flags %s\n", versions.LocalPath, goFlags)
	h.Write(controlMod)
	return versions.LocalPath + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// buildLocalPath compiles local-path-provisioner against the control
// module's dependency versions (in sourceDir/control), once per recipe,
// into cacheDir/bin/<arch>/ and returns its path. It belongs after
// berth-node's compile, whose packages it reuses.
func buildLocalPath(ctx context.Context, sourceDir, cacheDir string) (string, error) {
	controlDir := filepath.Join(sourceDir, "control")
	f, data, err := controlModule(controlDir)
	if err != nil {
		return "", err
	}
	return workBuild{
		What:    "local-path-provisioner " + versions.LocalPath + " against the control module's Kubernetes libraries",
		Binary:  "local-path-provisioner-" + localPathRecipe(data),
		Package: localPathModule,
		Prepare: func(_, work string) error {
			gen, err := localPathModuleFile(f, controlDir)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(work, "go.mod"), gen, 0o644); err != nil {
				return err
			}
			// The control module's checksums cover every shared module;
			// -mod=mod adds local-path-provisioner's own.
			return copyFile(filepath.Join(controlDir, "go.sum"), filepath.Join(work, "go.sum"))
		}}.build(ctx, cacheDir)
}

// localPathModuleFile is the control module's go.mod (f, read from
// controlDir) under another module path, with relative replacements made
// absolute and local-path-provisioner required.
func localPathModuleFile(f *modfile.File, controlDir string) ([]byte, error) {
	out, err := modfile.Parse("go.mod", nil, nil)
	if err != nil {
		return nil, err
	}
	if err := out.AddModuleStmt("berth.local/local-path-provisioner"); err != nil {
		return nil, err
	}
	if f.Go != nil {
		if err := out.AddGoStmt(f.Go.Version); err != nil {
			return nil, err
		}
	}
	for _, req := range f.Require {
		out.AddNewRequire(req.Mod.Path, req.Mod.Version, req.Indirect)
	}
	out.AddNewRequire(localPathModule, versions.LocalPath, false)
	for _, rep := range f.Replace {
		newPath := rep.New.Path
		if modfile.IsDirectoryPath(newPath) && !filepath.IsAbs(newPath) {
			newPath = filepath.Join(controlDir, newPath)
		}
		if err := out.AddReplace(rep.Old.Path, rep.Old.Version, newPath, rep.New.Version); err != nil {
			return nil, err
		}
	}
	out.Cleanup()
	return out.Format()
}
