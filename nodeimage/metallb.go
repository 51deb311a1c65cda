package nodeimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// MetalLB (LoadBalancer Services) is compiled from its module at
// versions.MetalLB. It cannot be built with `go install` as it is
// published: its go.mod requires github.com/metallb/frr-k8s v0.0.27,
// which the module proxy does not serve ("not available"), and the
// newest version it does serve (v0.0.21) lacks one type that MetalLB's
// FRR-K8s BGP backend uses. berth runs MetalLB in layer-2 mode only, so
// the build takes MetalLB's source from the module cache into a work
// directory and
//
//   - replaces frr-k8s with the served version (go.mod replace),
//   - puts a small stand-in of ours in place of the FRR-K8s backend
//     package (metallbsrc/frrk8s.go.txt), which refuses BGP sessions,
//   - turns the controller's and the speaker's `package main` into
//     importable packages, which the add-ons' multicall binary runs
//     (addonssrc/main.go.txt).
//
// Nothing of MetalLB's source is kept in this tree; the rewrite is
// mechanical and checked (it fails loudly if MetalLB's layout changes).
// The prepared copy is compiled with the other add-on programs
// (addonprograms.go), where the frr-k8s replacement is applied.

const (
	metallbModule = "go.universe.tf/metallb"
	frrK8sModule  = "github.com/metallb/frr-k8s"
	// frrK8sServed is the newest frr-k8s the module proxy serves.
	frrK8sServed = "v0.0.21"
	// metallbFRRPackage is the FRR-K8s backend, replaced by the stand-in.
	metallbFRRPackage = "internal/bgp/frrk8s/frrk8s.go"
)

//go:embed metallbsrc/frrk8s.go.txt
var metallbFRRStandIn []byte

// metallbPrograms are MetalLB's two commands, each a directory of the
// module whose package main becomes an importable package.
var metallbPrograms = []string{"controller", "speaker"}

// metallbRecipe identifies MetalLB's prepared source: its version, the
// replacement and the stand-in berth adds. It is part of the node image's
// recipe.
func metallbRecipe() string {
	h := sha256.New()
	fmt.Fprintf(h, "metallb %s frr-k8s %s\n", versions.MetalLB, frrK8sServed)
	h.Write(metallbFRRStandIn)
	return versions.MetalLB + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// goOutput runs the go command and returns what it printed on stdout.
func goOutput(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if _, lookErr := exec.LookPath("go"); lookErr != nil {
			return nil, fmt.Errorf("building the node image needs a Go toolchain (go): install Go 1.26 or newer")
		}
		return stdout.Bytes(), fmt.Errorf("go %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// metallbSourceDirs are the parts of MetalLB's module the two programs
// are built from.
var metallbSourceDirs = []string{"api", "internal", "controller", "speaker"}

// prepareMetalLBSource copies MetalLB's module at src (the read-only
// module cache) into work and applies berth's changes (see above).
func prepareMetalLBSource(src, work string) error {
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := copyFile(filepath.Join(src, f), filepath.Join(work, f)); err != nil {
			return err
		}
	}
	for _, d := range metallbSourceDirs {
		if err := copyTree(filepath.Join(src, d), filepath.Join(work, d)); err != nil {
			return err
		}
	}
	if err := editMetalLBModule(filepath.Join(work, "go.mod")); err != nil {
		return err
	}
	frr := filepath.Join(work, filepath.FromSlash(metallbFRRPackage))
	if _, err := os.Stat(frr); err != nil {
		return fmt.Errorf("MetalLB's FRR-K8s backend is no longer at %s: %w", metallbFRRPackage, err)
	}
	if err := os.WriteFile(frr, metallbFRRStandIn, 0o644); err != nil {
		return err
	}
	for _, p := range metallbPrograms {
		if err := makeImportable(filepath.Join(work, p), p); err != nil {
			return err
		}
	}
	return nil
}

// editMetalLBModule replaces frr-k8s by the served version and drops the
// toolchain line (which would make a newer go download a toolchain).
func editMetalLBModule(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		return err
	}
	if f.Module == nil || f.Module.Mod.Path != metallbModule {
		return fmt.Errorf("%s is not %s's go.mod", path, metallbModule)
	}
	f.DropToolchainStmt()
	if err := f.AddReplace(frrK8sModule, "", frrK8sModule, frrK8sServed); err != nil {
		return err
	}
	f.Cleanup()
	out, err := f.Format()
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

var (
	packageMain = regexp.MustCompile(`(?m)^package main$`)
	funcMain    = regexp.MustCompile(`(?m)^func main\(\) \{$`)
)

// makeImportable turns the package main in dir into package name, with
// its main function exported as Main.
func makeImportable(dir, name string) error {
	return makeImportableAs(dir, name, "MetalLB's "+name)
}

// makeImportableAs is makeImportable, naming the program what in errors.
func makeImportableAs(dir, name, what string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	mains := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if !packageMain.Match(data) {
			return fmt.Errorf("%s: %s is no longer package main", filepath.Base(f), what)
		}
		data = packageMain.ReplaceAll(data, []byte("package "+name))
		mains += len(funcMain.FindAllIndex(data, -1))
		data = funcMain.ReplaceAll(data, []byte("func Main() {"))
		if err := os.WriteFile(f, data, 0o644); err != nil {
			return err
		}
	}
	if mains != 1 {
		return fmt.Errorf("%s has %d main functions, expected 1", what, mains)
	}
	return nil
}

// copyTree copies the regular files under src to dst, leaving out tests
// and their data, with modes the build may write.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
