package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/nodeimage"
	"github.com/berth-dev/berth/nodeimage/layer"
	"github.com/berth-dev/berth/nodeimage/ociarchive"
)

// testImages is the prefix of most of the suite's images.
const testImages = "registry.k8s.io/e2e-test-images/"

// defaultEnv is what `docker build` gave every image whose base set no
// PATH: Docker's default.
var defaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// basePackages are what upstream's alpine-based agnhost installs, in
// Debian's names, plus nginx (one shared base layer for every image but
// busybox), and busybox-static (whose version names the busybox source to
// build).
var basePackages = []string{
	"bind9-dnsutils", "curl", "netcat-openbsd", "iproute2", "iperf", "bash", "util-linux",
	"procps", "iputils-ping", "ca-certificates", "nginx-light", "busybox-static",
}

// basePrune is removed from the base after debootstrap.
var basePrune = []string{
	"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc",
	"usr/share/man", "usr/share/locale", "usr/share/info",
}

// baseSetup adds what upstream's agnhost image has besides its tools:
// user-defined-in-image (uid 1000) in group-defined-in-image (gid 50000),
// which the SupplementalGroups tests use; and an empty resolv.conf (the
// engine mounts its own).
func baseSetup(ctx context.Context, dir string) error {
	for _, args := range [][]string{
		{"groupadd", "-g", "50000", "group-defined-in-image"},
		{"useradd", "-u", "1000", "-M", "-N", "-G", "group-defined-in-image", "user-defined-in-image"},
	} {
		if out, err := exec.CommandContext(ctx, "chroot", append([]string{dir}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("chroot %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return os.WriteFile(filepath.Join(dir, "etc/resolv.conf"), nil, 0o644)
}

// builder builds the images of one list.
type builder struct {
	list       []string
	out        string
	controlDir string
	goflags    string
	mirror     string
	log        *slog.Logger
	// k8sDir is the k8s.io/kubernetes module's source (test/images/...).
	k8sDir string
}

// built is one image and whether images.list names it.
type built struct {
	img ociarchive.Image
	// test images go to images.list, for the nodes; the mirror does not.
	test bool
}

// build compiles and assembles every image the list names that can be
// built here.
func (b *builder) build(ctx context.Context) ([]built, error) {
	k8s, err := b.goOutput(ctx, "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes")
	if err != nil {
		return nil, err
	}
	b.k8sDir = strings.TrimSpace(k8s)

	// The Debian base root filesystem, one layer under every image but
	// busybox and the mirror.
	tree := nodeimage.DebianTree{Prefix: "rootfs", Mirror: b.mirror, Packages: basePackages, Prune: basePrune, Setup: baseSetup, Version: "users-v1"}
	rootfs, err := tree.Ensure(ctx, b.out, b.log)
	if err != nil {
		return nil, err
	}
	base, err := b.baseLayer(rootfs)
	if err != nil {
		return nil, err
	}

	var images []built
	add := func(test bool, imgs ...ociarchive.Image) {
		for _, img := range imgs {
			images = append(images, built{img, test})
		}
	}
	agnhost := newest(b.matching(testImages + "agnhost"))
	if agnhost == "" {
		return nil, fmt.Errorf("the list names no agnhost image")
	}
	b.log.Info("compiling agnhost", "version", tag(agnhost))
	agnhostBin := filepath.Join(b.out, "agnhost")
	if err := b.goBuild(ctx, agnhostBin, "k8s.io/kubernetes/test/images/agnhost"); err != nil {
		return nil, err
	}
	agnhostLayer, err := b.agnhostLayer(agnhostBin)
	if err != nil {
		return nil, err
	}
	agnhostImg := agnhostImage(agnhost, base, agnhostLayer)
	add(true, agnhostImg)
	// Older agnhost tags the suite names (AgnhostPrev) get the same image.
	add(true, renamed(agnhostImg, others(b.matching(testImages+"agnhost"), agnhost))...)

	for _, n := range []string{"kitten", "nautilus"} {
		ref := b.want(n)
		if ref == "" {
			continue
		}
		web, err := b.webserverLayer(n)
		if err != nil {
			return nil, err
		}
		add(true, webserverImage(ref, agnhostImg, web))
	}

	nginx, err := ociarchive.NewLayer(nginxLayer())
	if err != nil {
		return nil, err
	}
	for _, ref := range b.matching(testImages + "nginx") {
		add(true, nginxImage(ref, base, nginx))
	}

	// The DNS tests' querier image: glibc-dns-testing since v1.36,
	// jessie-dnsutils before; both are a glibc userland with dig, which
	// the base carries.
	for _, name := range []string{"glibc-dns-testing", "jessie-dnsutils"} {
		if ref := b.want(name); ref != "" {
			add(true, baseImage(ref, base))
		}
	}

	if ref := b.want("nonewprivs"); ref != "" {
		bin := filepath.Join(b.out, "nnp")
		if err := b.goBuild(ctx, bin, "k8s.io/kubernetes/test/images/nonewprivs"); err != nil {
			return nil, err
		}
		l, err := binaryLayer("usr/local/bin/nnp", bin, 0o4755)
		if err != nil {
			return nil, err
		}
		img := baseImage(ref, base)
		img.Layers = append(img.Layers, l)
		img.Cmd = []string{"nnp"}
		add(true, img)
	}

	// etcd and sample-apiserver (the aggregator test runs both in one
	// pod): static Go binaries from the control module on the base.
	goImages := []struct {
		ref, pkg, path string
		entrypoint     bool
	}{
		{b.first("registry.k8s.io/etcd"), "go.etcd.io/etcd/server/v3", "usr/local/bin/etcd", false},
		{b.want("sample-apiserver"), "k8s.io/sample-apiserver", "sample-apiserver", true},
	}
	for _, g := range goImages {
		if g.ref == "" {
			continue
		}
		b.log.Info("compiling " + g.pkg)
		bin := filepath.Join(b.out, "bin", filepath.Base(g.path))
		if err := b.goBuild(ctx, bin, g.pkg); err != nil {
			return nil, err
		}
		l, err := binaryLayer(g.path, bin, 0o755)
		if err != nil {
			return nil, err
		}
		img := baseImage(g.ref, base)
		img.Layers = append(img.Layers, l)
		if g.entrypoint {
			// An ENTRYPOINT resets the CMD a base gives.
			img.Entrypoint, img.Cmd = []string{"/" + g.path}, nil
		}
		add(true, img)
	}

	if ref := b.want("nonroot"); ref != "" {
		img := baseImage(ref, base)
		img.User = "1234"
		add(true, img)
	}

	busybox := newest(b.matching(testImages + "busybox"))
	if busybox == "" {
		return nil, fmt.Errorf("the list names no busybox image")
	}
	bb, err := b.busybox(ctx, rootfs)
	if err != nil {
		return nil, err
	}
	bbLayer, err := busyboxLayer(ctx, bb)
	if err != nil {
		return nil, err
	}
	bbImg := busyboxImage(busybox, bbLayer)
	add(true, bbImg)
	add(true, renamed(bbImg, others(b.matching(testImages+"busybox"), busybox))...)

	return images, nil
}

// baseLayer is the base tree's layer, written once per tree next to it.
func (b *builder) baseLayer(rootfs string) (*ociarchive.Layer, error) {
	path := rootfs + ".tar"
	if _, err := os.Stat(path); err == nil {
		return ociarchive.OpenLayerFile(path)
	}
	b.log.Info("packing the base root filesystem")
	tree := layer.New()
	skip := func(rel string) bool {
		if rel == ".berth-complete" {
			return true
		}
		top, _, nested := strings.Cut(rel, "/")
		return nested && (top == "proc" || top == "sys" || top == "dev")
	}
	if err := tree.AddTree(rootfs, "", skip); err != nil {
		return nil, err
	}
	// The images carry what `tar -c` (no --xattrs) of the tree did:
	// iputils' ping without its cap_net_raw, so that a pod that drops
	// NET_RAW can still exec it.
	tree.StripXattrs()
	if _, err := ociarchive.WriteLayerFile(path+".tmp", tree); err != nil {
		return nil, err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return nil, err
	}
	return ociarchive.OpenLayerFile(path)
}

// baseImage is the Debian base as an image of its own (what `docker
// import -c 'CMD ["/bin/bash"]'` made of it).
func baseImage(ref string, base *ociarchive.Layer) ociarchive.Image {
	return ociarchive.Image{Name: ref, Layers: []*ociarchive.Layer{base}, Env: defaultEnv, Cmd: []string{"/bin/bash"}}
}

// agnhostLayer holds agnhost, the agnhost-2 link, porter's certificates
// and /uploads.
func (b *builder) agnhostLayer(bin string) (*ociarchive.Layer, error) {
	l := layer.New()
	if err := l.AddFileFrom("agnhost", bin, 0o755); err != nil {
		return nil, err
	}
	l.AddSymlink("agnhost-2", "agnhost")
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		if err := l.AddFileFrom(f, filepath.Join(b.k8sDir, "test/images/agnhost/porter", f), -1); err != nil {
			return nil, err
		}
	}
	l.AddDir("uploads", 0o755)
	return ociarchive.NewLayer(l)
}

func agnhostImage(ref string, base, agnhost *ociarchive.Layer) ociarchive.Image {
	return ociarchive.Image{
		Name:         ref,
		Layers:       []*ociarchive.Layer{base, agnhost},
		Env:          defaultEnv,
		Entrypoint:   []string{"/agnhost"},
		Cmd:          []string{"pause"},
		ExposedPorts: []string{"80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp"},
	}
}

// alpineOSRelease is upstream's kitten and nautilus base's os-release:
// they are built on agnhost's alpine:3.21, and the ImageVolume test mounts
// kitten as a volume and reads its /etc/os-release expecting "Alpine
// Linux".
const alpineOSRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.21.0
PRETTY_NAME="Alpine Linux v3.21"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`

// webserverLayer holds upstream's html files of kitten or nautilus and
// the os-release.
func (b *builder) webserverLayer(name string) (*ociarchive.Layer, error) {
	l := layer.New()
	dir := filepath.Join(b.k8sDir, "test/images", name, "html")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := l.AddFileFrom(e.Name(), filepath.Join(dir, e.Name()), -1); err != nil {
			return nil, err
		}
	}
	l.AddFile("etc/os-release", 0o644, []byte(alpineOSRelease))
	return ociarchive.NewLayer(l)
}

// webserverImage is agnhost's test-webserver over the html files.
func webserverImage(ref string, agnhost ociarchive.Image, web *ociarchive.Layer) ociarchive.Image {
	img := agnhost
	img.Name = ref
	img.Layers = append(append([]*ociarchive.Layer(nil), agnhost.Layers...), web)
	img.Cmd = []string{"test-webserver"}
	return img
}

// nginxLayer makes Debian's nginx log to the container's output and serve
// a welcome page.
func nginxLayer() *layer.Layer {
	l := layer.New()
	l.AddDir("var/log/nginx", 0o755)
	l.AddSymlink("var/log/nginx/access.log", "/dev/stdout")
	l.AddSymlink("var/log/nginx/error.log", "/dev/stderr")
	l.AddFile("usr/share/nginx/html/index.html", 0o644, []byte("<html><body><h1>Welcome to nginx!</h1></body></html>\n"))
	return l
}

func nginxImage(ref string, base, nginx *ociarchive.Layer) ociarchive.Image {
	return ociarchive.Image{
		Name:         ref,
		Layers:       []*ociarchive.Layer{base, nginx},
		Env:          defaultEnv,
		Cmd:          []string{"nginx", "-g", "daemon off;"},
		ExposedPorts: []string{"80/tcp"},
		StopSignal:   "SIGQUIT",
	}
}

// binaryLayer holds one binary.
func binaryLayer(path, bin string, mode int64) (*ociarchive.Layer, error) {
	l := layer.New()
	if err := l.AddFileFrom(path, bin, mode); err != nil {
		return nil, err
	}
	return ociarchive.NewLayer(l)
}

// renamed gives img each of names.
func renamed(img ociarchive.Image, names []string) []ociarchive.Image {
	var out []ociarchive.Image
	for _, n := range names {
		i := img
		i.Name = n
		out = append(out, i)
	}
	return out
}

// goBuild compiles pkg in the control module into bin, statically, with
// the control module's flags.
func (b *builder) goBuild(ctx context.Context, bin, pkg string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	_, err := b.goOutput(ctx, "build", "-ldflags", "-s -w", "-o", bin, pkg)
	return err
}

func (b *builder) goOutput(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.controlDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS="+b.goflags)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), b.controlDir, err, stderr.Bytes())
	}
	return stdout.String(), nil
}
