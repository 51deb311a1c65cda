package nodeimage

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// leftOutPackages are packages of the Debian base whose files the node
// image does not carry. The cached tree keeps them (debootstrap installs
// them as dependencies, and the helper image is built from busybox), only
// the image leaves them out; the shared libraries that only they used go
// with them (see unusedLibraries).
var leftOutPackages = []string{
	// An input of the helper image only.
	"busybox-static",
	// Nobody logs in to a node or adds users to it (perl, which the
	// account tools and debconf are written in, is already pruned).
	"login", "passwd", "libpam-modules", "libpam-modules-bin", "libpam-runtime",
	"adduser", "debconf", "init-system-helpers",
	// No file system is made or checked on a node: the kubelet formats
	// only attached block devices, which a berth node never has.
	"e2fsprogs", "logsave",
	// Packages are never installed on a running node (apt is pruned).
	"gpgv", "debian-archive-keyring",
	"diffutils", "openssl",
	// berth-node embeds Go's time zone database (control/components
	// imports time/tzdata, for CronJob time zones); the node runs in UTC,
	// which glibc and Go use without /etc/localtime.
	"tzdata",
}

// leftOutFiles are paths of the base (globs) the image does not carry:
// dpkg's per-package file lists and checksums (`dpkg -l` reads only the
// status file, which the image keeps without the left-out packages), the
// time zone links tzdata's scripts made, debconf's answers (debconf is
// left out), and iproute2's ARP daemon, the only program linking
// Berkeley DB (1.8 MB).
var leftOutFiles = []string{"var/lib/dpkg/info/*", "etc/localtime", "etc/timezone", "var/cache/debconf/*", "usr/sbin/arpd"}

// dlopened are shared libraries nothing links but something loads at
// run time, kept even when no program's ELF header names them: glibc's
// NSS modules and its compatibility stubs, libgcc_s (pthread_cancel),
// iptables' extensions.
var dlopened = regexp.MustCompile(`(^|/)(libnss_[^/]*|libgcc_s[^/]*|libpthread[^/]*|libdl[^/]*|librt[^/]*|libutil[^/]*|libanl[^/]*|libresolv[^/]*|ld-linux[^/]*|libc\.so[^/]*|libm\.so[^/]*)$|/xtables/`)

// leftOut lists every path of the base tree at root the image leaves
// out (relative, slash-separated, as layer.AddTree names them), and the
// dpkg status file to carry instead of the tree's (nil: it has none). extraPrograms are
// binaries added beside the tree (runc): the libraries they link stay.
func leftOut(root string, extraPrograms []string) (map[string]bool, []byte, error) {
	out := map[string]bool{}
	for _, pkg := range leftOutPackages {
		lists, _ := filepath.Glob(filepath.Join(root, "var/lib/dpkg/info", pkg+".list"))
		arch, _ := filepath.Glob(filepath.Join(root, "var/lib/dpkg/info", pkg+":*.list"))
		lists = append(lists, arch...)
		if len(lists) == 0 {
			// Not installed (another suite): nothing to leave out.
			continue
		}
		for _, l := range lists {
			data, err := os.ReadFile(l)
			if err != nil {
				return nil, nil, err
			}
			for _, p := range strings.Split(string(data), "\n") {
				rel := inTree(root, p)
				if rel == "" {
					continue
				}
				// Directories stay, and so do links to them (the
				// merged-/usr links, bin -> usr/bin, are listed by
				// every package with a file under /bin).
				full := filepath.Join(root, rel)
				if _, err := os.Lstat(full); err != nil {
					continue
				}
				if st, err := os.Stat(full); err == nil && st.IsDir() {
					continue
				}
				out[rel] = true
			}
		}
	}
	for _, g := range leftOutFiles {
		matches, _ := filepath.Glob(filepath.Join(root, g))
		for _, m := range matches {
			rel, _ := filepath.Rel(root, m)
			out[filepath.ToSlash(rel)] = true
		}
	}
	libs, err := unusedLibraries(root, out, extraPrograms)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range libs {
		out[l] = true
	}
	status, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return out, withoutPackages(status, leftOutPackages), nil
}

// inTree maps a path as a package lists it (/bin/cat) to the file it is
// in a merged-/usr tree (usr/bin/cat), following the top-level links.
func inTree(root, p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" || p == "." {
		return ""
	}
	top, rest, nested := strings.Cut(p, "/")
	if nested {
		if target, err := os.Readlink(filepath.Join(root, top)); err == nil && !strings.HasPrefix(target, "/") {
			return path.Join(target, rest)
		}
	}
	return p
}

// unusedLibraries returns the shared libraries under usr/lib that no
// kept program loads: the closure of the ELF programs of the tree not
// in gone, plus extraPrograms, over their DT_NEEDED entries, from the
// dlopened libraries too.
func unusedLibraries(root string, gone map[string]bool, extraPrograms []string) ([]string, error) {
	type object struct {
		needed []string
	}
	objects := map[string]object{}
	bySoname := map[string]string{}
	var libs, roots []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if top, _, _ := strings.Cut(rel, "/"); skipContents[top] && rel != top {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || gone[rel] {
			return nil
		}
		needed, soname, ok := elfDeps(p)
		if !ok {
			return nil
		}
		objects[rel] = object{needed: needed}
		isLib := strings.HasPrefix(rel, "usr/lib/") && strings.Contains(path.Base(rel), ".so")
		if !isLib {
			roots = append(roots, rel)
			return nil
		}
		libs = append(libs, rel)
		if soname == "" {
			soname = path.Base(rel)
		}
		if _, seen := bySoname[soname]; !seen {
			bySoname[soname] = rel
		}
		if dlopened.MatchString(rel) {
			roots = append(roots, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the base's programs: %w", err)
	}
	// Libraries are linked by their soname, often a link to the file.
	multiarch, _ := filepath.Glob(filepath.Join(root, "usr/lib/*-linux-gnu*"))
	for _, dir := range append([]string{filepath.Join(root, "usr/lib")}, multiarch...) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			rel, err := filepath.Rel(root, target)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			if _, seen := bySoname[e.Name()]; !seen {
				bySoname[e.Name()] = filepath.ToSlash(rel)
			}
		}
	}
	kept := map[string]bool{}
	var visit func(needed []string)
	walk := func(rel string) {
		if kept[rel] {
			return
		}
		kept[rel] = true
		visit(objects[rel].needed)
	}
	visit = func(needed []string) {
		for _, n := range needed {
			if lib, ok := bySoname[n]; ok {
				walk(lib)
			}
		}
	}
	for _, r := range roots {
		walk(r)
	}
	for _, p := range extraPrograms {
		// A static or non-ELF program links nothing.
		needed, _, _ := elfDeps(p)
		visit(needed)
	}
	var unused []string
	for _, l := range libs {
		if !kept[l] {
			unused = append(unused, l)
		}
	}
	return unused, nil
}

// elfDeps reads an ELF file's DT_NEEDED entries and soname; ok is false
// for anything else.
func elfDeps(p string) (needed []string, soname string, ok bool) {
	f, err := os.Open(p)
	if err != nil {
		return nil, "", false
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return nil, "", false
	}
	e, err := elf.NewFile(f)
	if err != nil {
		return nil, "", false
	}
	needed, _ = e.ImportedLibraries()
	if names, err := e.DynString(elf.DT_SONAME); err == nil && len(names) > 0 {
		soname = names[0]
	}
	return needed, soname, true
}

// withoutPackages drops the stanzas of pkgs from a dpkg status file.
func withoutPackages(status []byte, pkgs []string) []byte {
	drop := map[string]bool{}
	for _, p := range pkgs {
		drop[p] = true
	}
	var out []string
	for _, stanza := range strings.Split(strings.TrimRight(string(status), "\n"), "\n\n") {
		name := ""
		for _, line := range strings.Split(stanza, "\n") {
			if v, ok := strings.CutPrefix(line, "Package: "); ok {
				name = v
				break
			}
		}
		if !drop[name] {
			out = append(out, stanza)
		}
	}
	return []byte(strings.Join(out, "\n\n") + "\n")
}
