package nodeimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// CoreDNS and MetalLB, the two add-on programs built from source with
// their own dependency sets, are compiled by one `go build` in one work
// module: both sit on client-go and the Kubernetes API libraries at the
// same minor (CoreDNS v1.15.0 and MetalLB v0.16.2 both at v0.37.1), so
// one module resolves them to one version each and the compiler builds
// those packages once, not once per program. The work module replaces
// each program's module by its prepared copy (see coredns.go and
// metallb.go), carries MetalLB's frr-k8s replacement (replacements in a
// required module are ignored) and starts from both programs' checksums.
//
// (berth-node's own Kubernetes libraries are at the release's version
// with other pins below them; local-path-provisioner, which asks for
// older ones, is built against those instead — localpath.go.)

// addonsJointPins raise a module where the two programs' requirements
// meet at versions that do not build together: CoreDNS's dependencies
// take github.com/mdlayher/socket to v0.6, whose API MetalLB's
// github.com/mdlayher/packet v1.0.0 predates; packet's current release
// builds on it (MetalLB uses packet through mdlayher/arp, for layer-2
// announcements — TestLoadBalancer exercises it).
var addonsJointPins = []struct{ path, version string }{
	{"github.com/mdlayher/packet", "v1.2.0"},
}

// addonProgramsRecipe identifies the pair for release r.
func addonProgramsRecipe(r versions.Release) string {
	h := sha256.New()
	fmt.Fprintf(h, "together: %s %s %v\n", metallbRecipe(), corednsRecipe(r), addonsJointPins)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// buildAddonPrograms compiles MetalLB (controller and speaker, one
// binary) and release r's CoreDNS, once per recipe, into
// cacheDir/bin/<arch>/ and returns their paths.
func buildAddonPrograms(ctx context.Context, cacheDir string, r versions.Release) (metallb, coredns string, err error) {
	dir := filepath.Join(cacheDir, "bin", runtime.GOARCH)
	recipe := addonProgramsRecipe(r)
	metallb = filepath.Join(dir, "metallb-"+recipe)
	coredns = filepath.Join(dir, "coredns-"+recipe)
	_, errM := os.Stat(metallb)
	_, errC := os.Stat(coredns)
	if errM == nil && errC == nil {
		return metallb, coredns, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	work, err := os.MkdirTemp(cacheDir, "addons-src-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(work)

	metallbSrc, err := downloadModule(ctx, cacheDir, metallbModule, versions.MetalLB)
	if err != nil {
		return "", "", fmt.Errorf("downloading MetalLB %s: %w", versions.MetalLB, err)
	}
	corednsSrc, err := downloadModule(ctx, cacheDir, corednsModule, r.CoreDNS)
	if err != nil {
		return "", "", fmt.Errorf("downloading CoreDNS %s: %w", r.CoreDNS, err)
	}
	if err := prepareMetalLBSource(metallbSrc, filepath.Join(work, "metallb")); err != nil {
		return "", "", fmt.Errorf("preparing MetalLB %s's source: %w", versions.MetalLB, err)
	}
	if err := prepareCoreDNSSource(corednsSrc, filepath.Join(work, "coredns")); err != nil {
		return "", "", fmt.Errorf("preparing CoreDNS %s's source: %w", r.CoreDNS, err)
	}
	if err := writeAddonsModule(work, r); err != nil {
		return "", "", fmt.Errorf("writing the add-on programs' build module: %w", err)
	}
	out := filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", "", err
	}
	// -mod=mod records the versions the two modules resolve to together
	// (and any checksum neither listed).
	if err := runGo(ctx, work, goEnv(false), "build", "-mod=mod", "-ldflags=-s -w", "-o", out+"/",
		metallbModule+"/cmd/metallb", corednsModule); err != nil {
		return "", "", fmt.Errorf("compiling MetalLB %s and CoreDNS %s: %w", versions.MetalLB, r.CoreDNS, err)
	}
	for built, final := range map[string]string{"metallb": metallb, "coredns": coredns} {
		if err := os.Rename(filepath.Join(out, built), final); err != nil {
			return "", "", fmt.Errorf("caching %s: %w", built, err)
		}
	}
	return metallb, coredns, nil
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

// writeAddonsModule writes work/go.mod, requiring the two prepared copies
// in work/metallb and work/coredns, and work/go.sum, the union of theirs.
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
