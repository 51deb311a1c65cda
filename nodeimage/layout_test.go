package nodeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/nodeimage/layer"
	"github.com/berth-dev/berth/nodeimage/layer/layertest"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// testLayout is a layout over a tiny root filesystem and fake binaries.
func testLayout(t *testing.T) *layout {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "dev/pts", "proc/1", "tmp/junk", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"bin/ping": "ping", "etc/hostname": "x", "tmp/junk/f": "junk", "dev/pts/0": "tty", ".berth-complete": ""}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(filepath.Join(rootfs, "bin/ping"), "user.berth", []byte("kept"), 0); err != nil {
		t.Skipf("no user xattrs on the temporary directory's file system: %v", err)
	}
	// What Debian's iputils-ping carries (cap_net_raw+ep); root only.
	if os.Geteuid() == 0 {
		capNetRaw := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
		if err := unix.Setxattr(filepath.Join(rootfs, "bin/ping"), "security.capability", capNetRaw, 0); err != nil {
			t.Fatal(err)
		}
	}
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bins := map[string]string{}
	for _, tool := range goTools {
		bins[tool.Name] = bin(tool.Name)
	}
	bins[containerdBin] = bin(containerdBin)
	bins[cniBin] = bin(cniBin)
	return &layout{
		rootfs:  rootfs,
		nodeBin: bin("berth-node"),
		bins:    bins,
		images:  map[string][]byte{"pause.tar": []byte("oci")},
	}
}

func TestLayoutTree(t *testing.T) {
	l := testLayout(t)
	tree, err := l.tree()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	h := layertest.Headers(t, &buf)
	for _, name := range []string{"dev/", "proc/", "tmp/", "etc/hostname", "usr/local/bin/berth-node", "usr/local/bin/containerd", "usr/local/bin/ctr", "usr/local/bin/cni-plugins", "opt/cni/bin/bridge", "opt/cni/bin/host-device", "opt/berth/images/pause.tar", "etc/kubernetes/pki/", "var/lib/kubelet/"} {
		if h[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for _, name := range []string{"dev/pts/", "dev/pts/0", "proc/1/", "tmp/junk/", ".berth-complete", "usr/local/bin/local-path-provisioner", "usr/local/bin/kubectl"} {
		if h[name] != nil {
			t.Errorf("%s packed", name)
		}
	}
	if c := h["usr/local/bin/ctr"]; c == nil || c.Typeflag != tar.TypeSymlink || c.Linkname != "containerd" {
		t.Errorf("ctr = %+v", c)
	}
	for _, p := range cniPluginSet {
		if l := h["opt/cni/bin/"+p.Name]; l == nil || l.Typeflag != tar.TypeSymlink || l.Linkname != "/usr/local/bin/cni-plugins" {
			t.Errorf("%s = %+v", p.Name, l)
		}
	}
	if s := h["opt/cni/bin/berth-sriov"]; s == nil || s.Typeflag != tar.TypeSymlink || s.Linkname != "/usr/local/bin/berth-node" {
		t.Errorf("berth-sriov = %+v", s)
	}
	if n := h["usr/local/bin/berth-node"]; n.Mode != 0o755 || n.Uid != 0 {
		t.Errorf("berth-node mode %o uid %d", n.Mode, n.Uid)
	}
	ping := h["bin/ping"]
	if ping.PAXRecords["SCHILY.xattr.user.berth"] != "kept" {
		t.Errorf("bin/ping lost its xattrs: %v", ping.PAXRecords)
	}
	if os.Geteuid() == 0 && ping.PAXRecords["SCHILY.xattr.security.capability"] == "" {
		t.Error("bin/ping lost its file capability")
	}
}

// recordingStore keeps what a build loads.
type recordingStore struct {
	archives [][]byte
}

func (s *recordingStore) ImageLabels(context.Context, string) (map[string]string, bool, error) {
	return nil, false, nil
}

func (s *recordingStore) LoadImage(_ context.Context, r io.Reader) error {
	b, err := io.ReadAll(r)
	s.archives = append(s.archives, b)
	return err
}

func TestLayoutLoadIsReproducible(t *testing.T) {
	l := testLayout(t)
	cache := t.TempDir()
	store := &recordingStore{}
	r := versions.Default()
	for range 2 {
		if err := l.load(context.Background(), store, cache, nodeImage(r.NodeImage(), "recipe1", r)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(store.archives[0], store.archives[1]) {
		t.Error("the same layout loaded twice gave different archives")
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "*")); len(left) != 0 {
		t.Errorf("left in the cache: %v", left)
	}
	files := layertest.Files(t, bytes.NewReader(store.archives[0]))
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || manifest[0].RepoTags[0] != r.NodeImage() || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json = %s", files["manifest.json"])
	}
	var config v1.Image
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatal(err)
	}
	c := config.Config
	if !config.Created.Equal(layer.Epoch) || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/usr/local/bin/berth-node" || len(c.Env) != 2 ||
		c.Labels[nodeconfig.LabelNodeRecipe] != "recipe1" || c.Labels[nodeconfig.LabelKubernetesVersion] != r.Kubernetes {
		t.Errorf("config = %s", files[manifest[0].Config])
	}
	if h := layertest.Headers(t, bytes.NewReader(files[manifest[0].Layers[0]])); h["usr/local/bin/berth-node"] == nil {
		t.Error("the image's layer is not the layout")
	}
}
