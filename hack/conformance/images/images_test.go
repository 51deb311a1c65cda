package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/nodeimage/layer"
	"github.com/berth-dev/berth/nodeimage/layer/layertest"
	"github.com/berth-dev/berth/nodeimage/ociarchive"
)

const list = `registry.k8s.io/e2e-test-images/agnhost:2.55
registry.k8s.io/e2e-test-images/agnhost:2.63.0
registry.k8s.io/e2e-test-images/busybox:1.36.1-1
registry.k8s.io/e2e-test-images/busybox:1.37.0-1
registry.k8s.io/e2e-test-images/nginx:1.15-4
registry.k8s.io/e2e-test-images/nginx:1.27-0
registry.k8s.io/e2e-test-images/perl:5.26
registry.k8s.io/etcd:3.6.8-0
registry.k8s.io/pause:3.10.2
`

func testBuilder(t *testing.T) *builder {
	return &builder{list: parseList(list), out: t.TempDir(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestList(t *testing.T) {
	b := testBuilder(t)
	agnhosts := b.matching(testImages + "agnhost")
	if newest(agnhosts) != testImages+"agnhost:2.63.0" {
		t.Errorf("newest agnhost = %s", newest(agnhosts))
	}
	if got := others(agnhosts, testImages+"agnhost:2.63.0"); !reflect.DeepEqual(got, []string{testImages + "agnhost:2.55"}) {
		t.Errorf("older agnhosts = %v", got)
	}
	if b.first("registry.k8s.io/etcd") != "registry.k8s.io/etcd:3.6.8-0" || b.want("nonroot") != "" || b.want("nginx") != testImages+"nginx:1.15-4" {
		t.Error("want/first do not pick the first reference of a repository")
	}
	built := []string{testImages + "agnhost:2.63.0", testImages + "agnhost:2.55", testImages + "busybox:1.37.0-1", testImages + "busybox:1.36.1-1", testImages + "nginx:1.15-4", testImages + "nginx:1.27-0", "registry.k8s.io/etcd:3.6.8-0"}
	if got := b.missing(built); !reflect.DeepEqual(got, []string{testImages + "perl:5.26\n"}) {
		t.Errorf("missing = %q (pause is in every node)", got)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"2.55", "2.63.0", true},
		{"2.9", "2.10", true},
		{"1.36.1-1", "1.37.0-1", true},
		{"1.37.0-1", "1.37.0-2", true},
		{"1.37.0", "1.37.0-1", true},
		{"2.63.0", "2.63.0", false},
		{"1.10", "1.9", false},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

func config(t *testing.T, img ociarchive.Image) (cfg struct {
	Config struct {
		Entrypoint, Cmd, Env []string
		User, StopSignal     string
		ExposedPorts         map[string]struct{}
	}
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	}
}) {
	t.Helper()
	var buf bytes.Buffer
	if err := ociarchive.WriteArchive(&buf, ociarchive.Options{Docker: true}, img); err != nil {
		t.Fatal(err)
	}
	files := layertest.Files(t, &buf)
	var m []struct{ Config string }
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(files[m[0].Config], &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func memLayer(t *testing.T, name string) *ociarchive.Layer {
	l := layer.New()
	l.AddFile(name, 0o644, []byte(name))
	ol, err := ociarchive.NewLayer(l)
	if err != nil {
		t.Fatal(err)
	}
	return ol
}

// The configurations are what the Dockerfiles of the shell script gave.
func TestImageConfigs(t *testing.T) {
	base, top, web := memLayer(t, "base"), memLayer(t, "agnhost"), memLayer(t, "html")
	agnhost := agnhostImage(testImages+"agnhost:2.63.0", base, top)
	a := config(t, agnhost)
	if !reflect.DeepEqual(a.Config.Entrypoint, []string{"/agnhost"}) || !reflect.DeepEqual(a.Config.Cmd, []string{"pause"}) || len(a.Config.ExposedPorts) != 5 || len(a.RootFS.DiffIDs) != 2 {
		t.Errorf("agnhost = %+v", a)
	}
	k := config(t, webserverImage(testImages+"kitten:1.8", agnhost, web))
	if !reflect.DeepEqual(k.Config.Entrypoint, []string{"/agnhost"}) || !reflect.DeepEqual(k.Config.Cmd, []string{"test-webserver"}) || len(k.Config.ExposedPorts) != 5 || len(k.RootFS.DiffIDs) != 3 {
		t.Errorf("kitten = %+v", k)
	}
	if len(agnhost.Layers) != 2 {
		t.Error("building kitten changed agnhost's layers")
	}
	n := config(t, nginxImage(testImages+"nginx:1.27-0", base, top))
	if n.Config.StopSignal != "SIGQUIT" || !reflect.DeepEqual(n.Config.Cmd, []string{"nginx", "-g", "daemon off;"}) || n.Config.Entrypoint != nil {
		t.Errorf("nginx = %+v", n)
	}
	if g := config(t, baseImage(testImages+"glibc-dns-testing:2.0.0", base)); !reflect.DeepEqual(g.Config.Cmd, []string{"/bin/bash"}) || len(g.RootFS.DiffIDs) != 1 {
		t.Errorf("glibc-dns-testing = %+v", g)
	}
	for _, img := range []ociarchive.Image{agnhost, webserverImage("k", agnhost, web), nginxImage("n", base, top), baseImage("b", base)} {
		if c := config(t, img); !reflect.DeepEqual(c.Config.Env, defaultEnv) {
			t.Errorf("%s: env %v, want Docker's default PATH", img.Name, c.Config.Env)
		}
	}
	bb := config(t, busyboxImage(testImages+"busybox:1.37.0-1", top))
	if !reflect.DeepEqual(bb.Config.Env, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}) || !reflect.DeepEqual(bb.Config.Cmd, []string{"sh"}) {
		t.Errorf("busybox = %+v", bb)
	}
	older := renamed(agnhost, []string{testImages + "agnhost:2.55"})
	id1, _ := agnhost.ID()
	id2, _ := older[0].ID()
	if len(older) != 1 || older[0].Name != testImages+"agnhost:2.55" || id1 != id2 {
		t.Error("an older tag is not the same image")
	}
}

func layerEntries(t *testing.T, l io.WriterTo) map[string]*tar.Header {
	t.Helper()
	var buf bytes.Buffer
	if _, err := l.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return layertest.Headers(t, &buf)
}

func TestNginxLayer(t *testing.T) {
	e := layerEntries(t, nginxLayer())
	if h := e["var/log/nginx/access.log"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/dev/stdout" {
		t.Errorf("access.log = %+v", h)
	}
	if e["usr/share/nginx/html/index.html"] == nil {
		t.Error("no index.html")
	}
}

func TestBusyboxLayer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho '[ busybox sh ls'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	applets, err := busyboxApplets(context.Background(), bin)
	if err != nil || !reflect.DeepEqual(applets, []string{"[", "busybox", "sh", "ls"}) {
		t.Fatalf("applets = %q, %v", applets, err)
	}
	tree, err := busyboxTree(bin, applets)
	if err != nil {
		t.Fatal(err)
	}
	e := layerEntries(t, tree)
	for name, link := range map[string]string{"bin/sh": "busybox", "bin/[": "busybox", "usr/bin": "../bin", "sbin": "bin", "usr/sbin": "../bin"} {
		if h := e[name]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != link {
			t.Errorf("%s = %+v, want a link to %s", name, h, link)
		}
	}
	if e["bin/busybox"] == nil || e["bin/busybox"].Typeflag != tar.TypeReg || e["etc/passwd"] == nil || e["var/www/"] == nil {
		t.Error("busybox, passwd or /var/www missing")
	}
	if h := e["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/ = %+v", h)
	}
	if _, err := busyboxLayer(context.Background(), bin); err != nil {
		t.Error(err)
	}
}

func TestStaticConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".config")
	if err := os.WriteFile(path, []byte("CONFIG_A=y\n# CONFIG_STATIC is not set\nCONFIG_TC=y\nCONFIG_TCPSVD=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := staticConfig(path); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "CONFIG_A=y\nCONFIG_STATIC=y\n# CONFIG_TC is not set\nCONFIG_TCPSVD=y\n" {
		t.Errorf(".config = %q", got)
	}
}

func TestUntarStripsTheTopDirectory(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data string) {
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(data))
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "busybox-1.35.0/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "busybox-1.35.0/Makefile", Mode: 0o644}, "all:\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "busybox-1.35.0/scripts/gen", Mode: 0o755}, "#!/bin/sh\n")
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "busybox-1.35.0/link", Linkname: "Makefile"}, "")
	_ = tw.Close()
	dir := t.TempDir()
	if err := untar(bytes.NewReader(buf.Bytes()), dir); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "link")); err != nil || string(data) != "all:\n" {
		t.Errorf("Makefile via link = %q, %v", data, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "scripts/gen")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("scripts/gen = %v, %v", st, err)
	}

	buf.Reset()
	tw = tar.NewWriter(&buf)
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "top/../../escape", Mode: 0o644}, "x")
	_ = tw.Close()
	if err := untar(bytes.NewReader(buf.Bytes()), t.TempDir()); err == nil || !strings.Contains(err.Error(), "unsafe") {
		t.Errorf("a path out of the directory: %v", err)
	}
}

// fakeEngine has images by name and records loads.
type fakeEngine struct {
	t      *testing.T
	ids    map[string]string
	loaded []string
}

func (f *fakeEngine) ImageID(_ context.Context, ref string) (string, error) { return f.ids[ref], nil }

func (f *fakeEngine) LoadImage(_ context.Context, r io.Reader) error {
	var m []struct{ RepoTags []string }
	if err := json.Unmarshal(layertest.Files(f.t, r)["manifest.json"], &m); err != nil {
		return err
	}
	for _, e := range m {
		f.loaded = append(f.loaded, e.RepoTags...)
	}
	return nil
}

func TestLoadOnlyWhatChanged(t *testing.T) {
	base := memLayer(t, "base")
	current := baseImage("current:1", base)
	changed := baseImage("changed:1", base)
	id, _ := current.ID()
	e := &fakeEngine{t: t, ids: map[string]string{"current:1": id.String(), "changed:1": "sha256:old"}}
	images := []built{{current, true}, {changed, true}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := load(context.Background(), e, images, log); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.loaded, []string{"changed:1"}) {
		t.Errorf("loaded %v, want only changed:1", e.loaded)
	}
	e = &fakeEngine{t: t, ids: map[string]string{"current:1": id.String()}}
	if err := load(context.Background(), e, images[:1], log); err != nil || len(e.loaded) != 0 {
		t.Errorf("an unchanged image was loaded: %v %v", e.loaded, err)
	}
}

func TestBaseLayerIsCached(t *testing.T) {
	b := testBuilder(t)
	rootfs := filepath.Join(b.out, "rootfs-abc")
	for _, d := range []string{"bin", "proc/self", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"bin/bash", "proc/self/status", ".berth-complete"} {
		if err := os.WriteFile(filepath.Join(rootfs, f), []byte(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	first, err := b.baseLayer(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(rootfs + ".tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := layertest.Headers(t, f)
	if names["bin/bash"] == nil || names["proc/"] == nil || names["proc/self/status"] != nil || names[".berth-complete"] != nil {
		t.Errorf("base layer entries = %v", names)
	}
	// A second run reads the cached layer.
	if err := os.WriteFile(filepath.Join(rootfs, "bin/new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := b.baseLayer(rootfs)
	if err != nil || second.DiffID != first.DiffID {
		t.Errorf("second = %v, %v; first %v", second, err, first.DiffID)
	}
}
