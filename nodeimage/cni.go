package nodeimage

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// The CNI plugins the node runs (containernetworking/plugins) are one
// multicall binary, each plugin a link to it in /opt/cni/bin: built one by
// one they are five copies of the same Go runtime, netlink and CNI
// libraries (3–4 MB each, 17 MB together). Upstream publishes each plugin
// as a package main, so, as for MetalLB, the build copies the module from
// the module cache into a work directory, turns each plugin's package main
// into an importable package (mechanically; it fails loudly if the layout
// changes) and adds cnisrc/main.go.txt, which runs the plugin named by
// the name it was called by. The plugins' code is unchanged; the CNI
// runtime finds and runs them by name as before.

//go:embed cnisrc/main.go.txt
var cniMain []byte

const cniModule = "github.com/containernetworking/plugins"

// cniPlugin is one plugin: its name in /opt/cni/bin, its directory in the
// module and the package name it is given.
type cniPlugin struct{ Name, Dir, Package string }

// cniPluginSet is what the node runs: bridge, loopback, host-local and
// portmap for pods; host-device for SR-IOV (berth-sriov delegates to it).
var cniPluginSet = []cniPlugin{
	{"bridge", "plugins/main/bridge", "bridge"},
	{"loopback", "plugins/main/loopback", "loopback"},
	{"host-local", "plugins/ipam/host-local", "hostlocal"},
	{"portmap", "plugins/meta/portmap", "portmap"},
	{"host-device", "plugins/main/host-device", "hostdevice"},
}

// cniBin is the multicall binary's key in the build's map of binaries.
const cniBin = "cni-plugins"

// cniDir is where the plugins live in the node image.
const cniDir = "opt/cni/bin"

func cniRecipe() string {
	h := sha256.New()
	fmt.Fprintf(h, "cni %s flags %s %v\n", versions.CNIPlugins, goFlags, cniPluginSet)
	h.Write(cniMain)
	return versions.CNIPlugins + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// buildCNI compiles the plugins as one binary, once per recipe, into
// cacheDir/bin/<arch>/ and returns its path.
func buildCNI(ctx context.Context, cacheDir string) (string, error) {
	return workBuild{What: "the CNI plugins " + versions.CNIPlugins, Binary: "cni-plugins-" + cniRecipe(), Package: "./cmd/berth-cni",
		Module: cniModule, Version: versions.CNIPlugins, Prepare: prepareCNISource}.build(ctx, cacheDir)
}

// prepareCNISource copies the plugins' module at src into work (without
// tests) and makes each plugin of the set importable.
func prepareCNISource(src, work string) error {
	if err := copyTree(src, work); err != nil {
		return err
	}
	for _, p := range cniPluginSet {
		if err := makeImportableAs(filepath.Join(work, filepath.FromSlash(p.Dir)), p.Package, "the CNI plugin "+p.Name); err != nil {
			return err
		}
	}
	main := filepath.Join(work, "cmd", "berth-cni", "main.go")
	if err := os.MkdirAll(filepath.Dir(main), 0o755); err != nil {
		return err
	}
	return os.WriteFile(main, cniMain, 0o644)
}
