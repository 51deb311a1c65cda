package nodeimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/nodeimage/layer"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/ociarchive"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// Packages are installed on top of Debian's minbase variant: what the
// kubelet, kube-proxy (nftables mode), the CNI plugins and runc need.
var Packages = []string{
	"ca-certificates", "conntrack", "iproute2", "iptables", "nftables",
	"libseccomp2", "mount", "util-linux", "procps", "kmod",
	// Not used by the node itself: the storage helper image is built
	// from its binary.
	"busybox-static",
}

// pruned are paths removed from the base to keep the image small.
var pruned = []string{
	"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
	"usr/share/lintian", "usr/share/common-licenses", "var/cache/apt",
	"var/lib/apt/lists", "var/cache/debconf/templates.dat-old", "var/log",
	// Nothing in a node converts character sets, runs perl or installs
	// packages: glibc's iconv modules, perl and apt go (~20 MB). dpkg's
	// database stays, so `dpkg -l` still says what the node carries.
	"usr/lib/*-linux-gnu/gconv", "usr/lib/*-linux-gnu/perl-base", "usr/bin/perl*", "usr/share/perl5",
	"usr/bin/apt*", "usr/lib/apt", "usr/lib/*-linux-gnu/libapt-*", "usr/share/bash-completion",
}

// baseRootfs returns the node's cached Debian tree, creating it if needed.
func baseRootfs(ctx context.Context, cacheDir, mirror string, log *slog.Logger) (string, error) {
	dir, err := DebianTree{Prefix: "rootfs", Mirror: mirror, Packages: Packages, Prune: pruned}.Ensure(ctx, cacheDir, log)
	if errors.Is(err, ErrDebootstrapNeedsRoot) {
		return "", errNotRoot
	}
	return dir, err
}

// busyboxApplets are linked in the storage helper image: what the
// provisioner's setup and teardown scripts run.
var busyboxApplets = []string{"sh", "mkdir", "rm", "rmdir", "ls", "cat", "echo", "chmod", "chown", "test", "[", "sleep", "du", "find"}

// podImages builds the OCI archives of the images pods run, their layers
// zstd-compressed and cached in cacheDir (layerCache), the archives in
// parallel.
func podImages(cacheDir, rootfs, pauseBin string, bins map[string]string, r versions.Release) (map[string][]byte, error) {
	read := func(path string) ([]byte, error) { return os.ReadFile(path) }
	pause, err := read(pauseBin)
	if err != nil {
		return nil, err
	}
	busybox, err := read(filepath.Join(rootfs, "bin/busybox"))
	if err != nil {
		return nil, fmt.Errorf("the base filesystem lacks busybox: %w", err)
	}
	helper := []ociarchive.File{{Path: "bin/busybox", Mode: 0o755, Data: busybox}}
	for _, a := range busyboxApplets {
		helper = append(helper, ociarchive.File{Path: "bin/" + a, Link: "busybox"})
	}
	path := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	images := []struct {
		file string
		img  ociarchive.Image
	}{
		{"pause.tar", ociarchive.Image{Name: r.PauseImage(), Entrypoint: []string{"/pause"}, Files: []ociarchive.File{{Path: "pause", Mode: 0o755, Data: pause}}}},
		{"busybox.tar", ociarchive.Image{Name: versions.HelperImage, Env: path, Cmd: []string{"sh"}, Files: helper}},
	}
	cache := layerCache{dir: filepath.Join(cacheDir, "layers")}
	if err := os.MkdirAll(cache.dir, 0o755); err != nil {
		return nil, err
	}
	opts := ociarchive.Options{Layer: cache.layer}
	var (
		mu   sync.Mutex
		out  = map[string][]byte{}
		errs []error
		wg   sync.WaitGroup
	)
	build := func(file string, write func() ([]byte, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, err := write()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[file] = data
		}()
	}
	for _, i := range images {
		build(i.file, func() ([]byte, error) {
			var buf bytes.Buffer
			if err := ociarchive.WriteArchive(&buf, opts, i.img); err != nil {
				return nil, fmt.Errorf("building image %s: %w", i.img.Name, err)
			}
			return buf.Bytes(), nil
		})
	}
	if path := bins[addonsBin]; path != "" {
		build(AddonsArchive, func() ([]byte, error) { return addonsArchive(path, r, cache.layer) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// layerCache keeps the pod images' zstd layers by their diff ID: zstd's
// best level takes about a minute for CoreDNS's binary on two busy
// cores, and the binaries change only with their pinned versions.
type layerCache struct{ dir string }

func (c layerCache) layer(src io.WriterTo) (*ociarchive.Layer, error) {
	var raw bytes.Buffer
	if _, err := src.WriteTo(&raw); err != nil {
		return nil, err
	}
	diffID := digest.FromBytes(raw.Bytes())
	path := filepath.Join(c.dir, diffID.Encoded()+".tar.zst")
	if data, err := os.ReadFile(path); err == nil {
		return ociarchive.ZstdLayer(diffID, data), nil
	}
	l, err := ociarchive.NewZstdLayer(bytes.NewReader(raw.Bytes()))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".tmp", l.Blob(), 0o644); err == nil {
		_ = os.Rename(path+".tmp", path)
	}
	return l, nil
}

// layout is the node image's file system: the Debian base plus berth's
// binaries, symlinks and pod images.
type layout struct {
	rootfs  string
	nodeBin string
	bins    map[string]string
	images  map[string][]byte
}

// emptyDirs exist in every node.
var emptyDirs = []string{"etc/kubernetes/pki", "etc/cni/net.d", "etc/berth", "etc/containerd", "var/log/berth", "var/lib/kubelet", "opt/berth/images"}

// tree is the node image's file system as its only layer: the Debian
// base with file capabilities and other extended attributes, berth's
// binaries, symlinks and pod images, written the same way every time.
func (l *layout) tree() (*layer.Layer, error) {
	t := layer.New()
	var extra []string
	if runc := l.bins["runc"]; runc != "" {
		extra = append(extra, runc)
	}
	gone, status, err := leftOut(l.rootfs, extra)
	if err != nil {
		return nil, fmt.Errorf("choosing what the image leaves out: %w", err)
	}
	skip := func(rel string) bool {
		return skipInRootfs(rel) || gone[rel] || rel == statusFile
	}
	if err := t.AddTree(l.rootfs, "", skip); err != nil {
		return nil, fmt.Errorf("packing root filesystem: %w", err)
	}
	if status != nil {
		t.AddFile(statusFile, 0o644, status)
	}
	for _, d := range emptyDirs {
		t.AddDir(d, 0o755)
	}
	if err := t.AddFileFrom("usr/local/bin/berth-node", l.nodeBin, 0o755); err != nil {
		return nil, err
	}
	// kubectl is not in the node (berth applies the add-ons with
	// client-go; `berth kubectl` is kubectl on the host): that took 9 MB
	// off berth-node, and kubectl's package inits (20 ms, 4 MB of
	// allocations) off every component's start.
	// berth-node is also a CNI plugin, run by its name from /opt/cni/bin.
	t.AddSymlink("opt/cni/bin/"+nodeconfig.SRIOVCNIPlugin, "/usr/local/bin/berth-node")
	if err := t.AddFileFrom("usr/local/bin/containerd", l.bins[containerdBin], 0o755); err != nil {
		return nil, err
	}
	t.AddSymlink("usr/local/bin/ctr", "containerd")
	if err := t.AddFileFrom("usr/local/bin/cni-plugins", l.bins[cniBin], 0o755); err != nil {
		return nil, err
	}
	for _, p := range cniPluginSet {
		t.AddSymlink(cniDir+"/"+p.Name, "/usr/local/bin/cni-plugins")
	}
	for _, tool := range goTools {
		if tool.Dest == "" {
			continue
		}
		if err := t.AddFileFrom(strings.TrimPrefix(tool.Dest, "/")+"/"+tool.Name, l.bins[tool.Name], 0o755); err != nil {
			return nil, err
		}
	}
	for name, data := range l.images {
		t.AddFile("opt/berth/images/"+name, 0o644, data)
	}
	return t, nil
}

// statusFile is dpkg's database of installed packages.
const statusFile = "var/lib/dpkg/status"

// skipContents are directories kept empty in the image: the engine mounts
// its own there.
var skipContents = map[string]bool{"dev": true, "proc": true, "sys": true, "run": true, "tmp": true}

// skipInRootfs leaves out of the base tree the contents of skipContents
// and the cache's completion marker.
func skipInRootfs(rel string) bool {
	if rel == ".berth-complete" {
		return true
	}
	top, _, nested := strings.Cut(rel, "/")
	return nested && skipContents[top]
}

// nodeImage is the node image's configuration (no base image: the layer
// is the whole file system).
func nodeImage(ref, recipe string, r versions.Release) ociarchive.Image {
	return ociarchive.Image{
		Name:       ref,
		Entrypoint: []string{"/usr/local/bin/berth-node"},
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"KUBECONFIG=/etc/kubernetes/admin.conf",
		},
		Labels: map[string]string{
			nodeconfig.LabelNodeRecipe:        recipe,
			nodeconfig.LabelKubernetesVersion: r.Kubernetes,
		},
	}
}

// load writes the layout as img's only layer and loads img into the
// engine. The image is assembled here, not by the engine (an import
// stamps the time it ran), so its configuration — created at
// layer.Epoch — and its layer are the same bytes for the same recipe: the
// same image ID wherever it is built from the same inputs. The layer goes
// through a file in dir (its digest and size head the archive), removed
// afterwards.
func (l *layout) load(ctx context.Context, store Store, dir string, img ociarchive.Image) error {
	tree, err := l.tree()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "node-layer-*.tar")
	if err != nil {
		return err
	}
	_ = f.Close()
	defer os.Remove(f.Name())
	rootfs, err := ociarchive.WriteLayerFile(f.Name(), tree)
	if err != nil {
		return err
	}
	img.Layers = []*ociarchive.Layer{rootfs}
	return ociarchive.Load(ctx, store, img)
}
