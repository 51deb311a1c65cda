// Command images builds, without any registry, the container images the
// upstream Kubernetes e2e suite (of the version hack/conformance.sh
// tests) runs, under exactly the names `e2e.test --list-images` prints,
// and loads them into the local Docker engine:
//
//	registry.k8s.io/e2e-test-images/agnhost:2.63.0   agnhost compiled from
//	    k8s.io/kubernetes/test/images/agnhost (control module) on a Debian
//	    bookworm minbase with the tools upstream's alpine image carries
//	    (dig, curl, nc, ip/ss, iperf, bash, ipcs); older agnhost tags the
//	    suite names get the same image
//	registry.k8s.io/e2e-test-images/busybox:1.37.0-1  upstream busybox built
//	    from source (static, defconfig) with one symlink per applet
//	registry.k8s.io/e2e-test-images/nginx:1.27-0, nginx:1.28-0 (whatever
//	    the suite names)  Debian's nginx, in the foreground on port 80
//	registry.k8s.io/e2e-test-images/kitten:1.8, nautilus:1.8  agnhost
//	    test-webserver with upstream's html files (and its base's os-release)
//	registry.k8s.io/e2e-test-images/nonroot:1.5  the base as uid 1234
//	registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0  the base (dig)
//	registry.k8s.io/e2e-test-images/nonewprivs:1.4  nnp compiled from
//	    k8s.io/kubernetes/test/images/nonewprivs, setuid root
//	registry.k8s.io/etcd:3.6.8-0  /usr/local/bin/etcd compiled from
//	    go.etcd.io/etcd/server/v3 at the version berth-node embeds
//	registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2  /sample-apiserver
//	    compiled from k8s.io/sample-apiserver at the cluster's version
//
// The pause image is already in every berth node. hack/conformance.sh
// pushes these images into berth's local registry, which serves them to
// the nodes as registry.k8s.io.
//
// The images are assembled here (package nodeimage/ociarchive), not by
// `docker build`: the same inputs give the same image IDs, so an image
// whose ID Docker already has under its name is not loaded again. The
// Debian root filesystem (nodeimage.DebianTree) is cached by package list
// and mirror, and so is its layer. Go programs are compiled in control/
// with the flags in CONTROL_GOFLAGS (default -trimpath), as
// hack/conformance.sh sets them for the version it tests. Outputs: the
// images in Docker and OUT/images.list (one name a line) for `berth load
// image`; names in LIST that are not built go to OUT/images.missing.
//
// Usage: go run ./hack/conformance/images LIST [OUT_DIR]
// (hack/conformance/images.sh LIST [OUT_DIR] runs it from anywhere).
//
//	LIST     the output of `e2e.test --list-images`
//	OUT_DIR  default ~/.cache/berth/conformance
//
// DEBIAN_MIRROR overrides the mirror read from the host's apt sources.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/cluster/provider/docker"
	"github.com/berth-dev/berth/nodeimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("prog", "images")
	if err := run(ctx, os.Args[1:], log); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("usage: images LIST [OUT_DIR]")
	}
	listData, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	out := ""
	if len(args) == 2 {
		out = args[1]
	} else {
		cache, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		out = filepath.Join(cache, "berth", "conformance")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	src, err := nodeimage.FindSourceDir()
	if err != nil {
		return err
	}
	mirror := os.Getenv("DEBIAN_MIRROR")
	if mirror == "" {
		if mirror, err = nodeimage.MirrorFromAptSources("/"); err != nil {
			return fmt.Errorf("%w (or set DEBIAN_MIRROR)", err)
		}
	}
	goflags := os.Getenv("CONTROL_GOFLAGS")
	if goflags == "" {
		goflags = "-trimpath"
	}
	engine, err := docker.New(ctx, log)
	if err != nil {
		return err
	}
	b := &builder{
		list:       parseList(string(listData)),
		out:        out,
		controlDir: filepath.Join(src, "control"),
		goflags:    goflags,
		mirror:     mirror,
		log:        log,
	}
	built, err := b.build(ctx)
	if err != nil {
		return err
	}
	if err := load(ctx, engine, built, log); err != nil {
		return err
	}
	names := listed(built)
	if err := os.WriteFile(filepath.Join(out, "images.list"), []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "images.missing"), []byte(strings.Join(b.missing(names), "")), 0o644); err != nil {
		return err
	}
	log.Info("images ready", "images", strings.Join(names, " "))
	return nil
}
