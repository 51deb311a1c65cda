package main

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/nodeimage"
	"github.com/berth-dev/berth/nodeimage/layer"
	"github.com/berth-dev/berth/nodeimage/ociarchive"
)

// busybox returns upstream's busybox, compiled once per version: the
// version the base's busybox-static carries, from Debian's pristine
// upstream tarball (its .orig.tar.bz2, on the same mirror), upstream
// defconfig, static. Not Debian's busybox-static itself: Debian patches
// ash to drop environment variables whose names are not shell
// identifiers (debian/patches/revert-9c143ce5...), which upstream's ash
// passes on and the ConfigMap/Secret envFrom tests print with `sh -c
// env`; and the read-only root filesystem test expects ash's own error
// message.
func (b *builder) busybox(ctx context.Context, rootfs string) (string, error) {
	debVersion, ok, err := nodeimage.PackageVersion(rootfs, "busybox-static")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("the base root filesystem lacks busybox-static")
	}
	version := nodeimage.UpstreamVersion(debVersion)
	bin := filepath.Join(b.out, "busybox-"+version, "busybox")
	if st, err := os.Stat(bin); err == nil && st.Mode()&0o111 != 0 {
		return bin, nil
	}
	b.log.Info("compiling busybox from upstream's source", "version", version)
	src, err := os.MkdirTemp(b.out, "busybox-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	url := b.mirror + "/pool/main/b/busybox/busybox_" + version + ".orig.tar.bz2"
	if err := download(ctx, url, src); err != nil {
		return "", fmt.Errorf("fetching busybox %s's source: %w", version, err)
	}
	logPath := filepath.Join(b.out, "busybox-build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	runMake := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "make", args...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = src, logFile, logFile
		if err := cmd.Run(); err != nil {
			tail, _ := os.ReadFile(logPath)
			if len(tail) > 3000 {
				tail = tail[len(tail)-3000:]
			}
			return fmt.Errorf("make %s (busybox %s): %w\n%s", strings.Join(args, " "), version, err, tail)
		}
		return nil
	}
	if err := runMake("defconfig"); err != nil {
		return "", err
	}
	if err := staticConfig(filepath.Join(src, ".config")); err != nil {
		return "", err
	}
	if err := runMake("-j"+strconv.Itoa(runtime.NumCPU()), "busybox"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(src, "busybox"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(bin+".tmp", data, 0o755); err != nil {
		return "", err
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// staticConfig turns defconfig into a static build without tc (which
// does not build against current kernel headers).
func staticConfig(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := strings.Replace(string(data), "# CONFIG_STATIC is not set\n", "CONFIG_STATIC=y\n", 1)
	text = strings.Replace(text, "\nCONFIG_TC=y\n", "\n# CONFIG_TC is not set\n", 1)
	return os.WriteFile(path, []byte(text), 0o644)
}

// download unpacks the .tar.bz2 at url into dir, without its top
// directory.
func download(ctx context.Context, url, dir string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return untar(bzip2.NewReader(resp.Body), dir)
}

// untar extracts a source tarball into dir, dropping each name's first
// component (tar --strip-components=1).
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		_, rel, ok := strings.Cut(strings.TrimPrefix(h.Name, "./"), "/")
		if !ok || rel == "" {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("unsafe path %q in the archive", h.Name)
		}
		path := filepath.Join(dir, rel)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			err = writeFile(path, tr, os.FileMode(h.Mode)&0o777)
		case tar.TypeSymlink:
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				err = os.Symlink(h.Linkname, path)
			}
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// busyboxApplets asks a busybox binary for its applets.
func busyboxApplets(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bin, err)
	}
	return strings.Fields(string(bytes.TrimSpace(out))), nil
}

// busyboxPasswd and busyboxGroup are what Docker's busybox image carries.
const (
	busyboxPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	busyboxGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`
)

// busyboxLayer is the whole busybox image.
func busyboxLayer(ctx context.Context, bin string) (*ociarchive.Layer, error) {
	applets, err := busyboxApplets(ctx, bin)
	if err != nil {
		return nil, err
	}
	l, err := busyboxTree(bin, applets)
	if err != nil {
		return nil, err
	}
	return ociarchive.NewLayer(l)
}

// busyboxTree holds the binary, one symlink per applet, the usual
// directories and users.
func busyboxTree(bin string, applets []string) (*layer.Layer, error) {
	l := layer.New()
	for _, d := range []string{"bin", "etc", "root", "var/www", "home", "usr"} {
		l.AddDir(d, 0o755)
	}
	l.AddDir("tmp", 0o1777)
	if err := l.AddFileFrom("bin/busybox", bin, 0o755); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a != "busybox" {
			l.AddSymlink("bin/"+a, "busybox")
		}
	}
	l.AddSymlink("usr/bin", "../bin")
	l.AddSymlink("sbin", "bin")
	l.AddSymlink("usr/sbin", "../bin")
	l.AddFile("etc/passwd", 0o644, []byte(busyboxPasswd))
	l.AddFile("etc/group", 0o644, []byte(busyboxGroup))
	return l, nil
}

func busyboxImage(ref string, l *ociarchive.Layer) ociarchive.Image {
	return ociarchive.Image{
		Name:   ref,
		Layers: []*ociarchive.Layer{l},
		Env:    []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd:    []string{"sh"},
	}
}
