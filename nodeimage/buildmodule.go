package nodeimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// The control module (berth-node) is written once and compiled against
// each supported Kubernetes version. Its checked-in go.mod pins the
// default version; for any other, a build module is generated from the
// same recipe — the control module's direct requirements with the
// Kubernetes ones moved to that version, every k8s.io staging module
// replaced by its matching v0.Y.Z, and etcd at the version that
// Kubernetes requires — and `go build -modfile` compiles the same source
// tree with it. Adding the next minor is a row in versions.Releases.

const (
	kubernetesModule = "k8s.io/kubernetes"
	etcdServerModule = "go.etcd.io/etcd/server/v3"
)

// controlModule reads the control module's go.mod.
func controlModule(controlDir string) (*modfile.File, []byte, error) {
	path := filepath.Join(controlDir, "go.mod")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the control module: %w", err)
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return f, data, nil
}

// checkedInRelease reports whether the control module's own go.mod
// already builds release.
func checkedInRelease(f *modfile.File, r versions.Release) bool {
	for _, req := range f.Require {
		if req.Mod.Path == kubernetesModule {
			return req.Mod.Version == r.Kubernetes
		}
	}
	return false
}

// isStaging tells whether path is a module published from Kubernetes'
// staging directory (versioned v0.Y.Z alongside k8s.io/kubernetes v1.Y.Z).
func isStaging(f *modfile.File, path string) bool {
	for _, rep := range f.Replace {
		if rep.Old.Path == path && strings.HasPrefix(path, "k8s.io/") && rep.New.Path == path {
			return true
		}
	}
	return false
}

// generateBuildModule returns the text of the build module's go.mod for
// release, from the control module's go.mod (f). controlDir is where the
// control module lives: relative replacements are made absolute, since
// the generated file lives elsewhere.
func generateBuildModule(f *modfile.File, controlDir string, r versions.Release) ([]byte, error) {
	out := &modfile.File{}
	if err := out.AddModuleStmt(f.Module.Mod.Path); err != nil {
		return nil, err
	}
	if f.Go != nil {
		if err := out.AddGoStmt(f.Go.Version); err != nil {
			return nil, err
		}
	}
	staging := r.StagingVersion()
	for _, req := range f.Require {
		if req.Indirect {
			continue
		}
		v := req.Mod.Version
		switch {
		case req.Mod.Path == kubernetesModule:
			v = r.Kubernetes
		case req.Mod.Path == etcdServerModule:
			v = r.Etcd
		case isStaging(f, req.Mod.Path):
			v = staging
		}
		out.AddNewRequire(req.Mod.Path, v, false)
	}
	for _, rep := range f.Replace {
		switch {
		case isStaging(f, rep.Old.Path):
			if err := out.AddReplace(rep.Old.Path, "", rep.New.Path, staging); err != nil {
				return nil, err
			}
		case modfile.IsDirectoryPath(rep.New.Path):
			dir := rep.New.Path
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(controlDir, dir)
			}
			if err := out.AddReplace(rep.Old.Path, rep.Old.Version, dir, ""); err != nil {
				return nil, err
			}
		default:
			if err := out.AddReplace(rep.Old.Path, rep.Old.Version, rep.New.Path, rep.New.Version); err != nil {
				return nil, err
			}
		}
	}
	if err := module.CheckPath(out.Module.Mod.Path); err != nil {
		return nil, err
	}
	out.Cleanup()
	return out.Format()
}

// BuildModFile returns the -modfile that compiles the control module (in
// sourceDir/control) against release ("" when its own go.mod does), for
// scripts that build other programs of that Kubernetes version (the
// conformance suite's e2e.test).
func BuildModFile(ctx context.Context, opts Options) (string, error) {
	if err := opts.defaults(); err != nil {
		return "", err
	}
	return buildModFile(ctx, filepath.Join(opts.SourceDir, "control"), opts.CacheDir, opts.Release)
}

// buildModFile returns the -modfile to compile the control module for
// release with ("" when its own go.mod is that release), generating and
// tidying it into the cache the first time.
func buildModFile(ctx context.Context, controlDir, cacheDir string, r versions.Release) (string, error) {
	f, data, err := controlModule(controlDir)
	if err != nil {
		return "", err
	}
	if checkedInRelease(f, r) {
		return "", nil
	}
	gen, err := generateBuildModule(f, controlDir, r)
	if err != nil {
		return "", fmt.Errorf("generating the build module for Kubernetes %s: %w", r.Kubernetes, err)
	}
	h := sha256.New()
	h.Write(data)
	h.Write(gen)
	dir := filepath.Join(cacheDir, "modules", r.Kubernetes+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	path := filepath.Join(dir, "go.mod")
	if _, err := os.Stat(filepath.Join(dir, ".tidy")); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, gen, 0o644); err != nil {
		return "", err
	}
	// tidy resolves every indirect requirement from the chosen Kubernetes
	// version's own go.mod and writes go.sum beside the file.
	if err := runGo(ctx, controlDir, goEnv(false), "mod", "tidy", "-modfile="+path); err != nil {
		return "", fmt.Errorf("resolving the build module for Kubernetes %s: %w", r.Kubernetes, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tidy"), nil, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// buildTags are the per-version build tags of the control module: where
// an API differs between minors, a small file behind `k8s_1_35`-style
// tags holds the difference, never a copy of the code.
func buildTags(r versions.Release) string {
	major, minor := r.MajorMinor()
	return "k8s_" + major + "_" + minor
}
