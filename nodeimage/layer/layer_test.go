package layer

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/nodeimage/layer/layertest"
)

// tree makes a small root filesystem: files, a directory, a symbolic and
// a hard link, a setuid file, a user.* attribute and (as root) a file
// capability.
func tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "dev/pts"), 0o755))
	must(os.WriteFile(filepath.Join(root, "dev/null-ish"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/suid"), []byte("suid"), 0o755))
	must(os.Chmod(filepath.Join(root, "usr/bin/suid"), os.ModeSetuid|0o755))
	must(os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/alias")))
	must(os.Symlink("tool", filepath.Join(root, "usr/bin/link")))
	must(os.WriteFile(filepath.Join(root, "marked"), []byte("m"), 0o600))
	if err := unix.Setxattr(filepath.Join(root, "marked"), "user.berth", []byte("yes"), 0); err != nil {
		t.Skipf("the temporary directory's file system has no user xattrs: %v", err)
	}
	// Different mtimes and access times must not reach the output.
	must(os.Chtimes(filepath.Join(root, "marked"), time.Now(), time.Now().Add(-time.Hour)))
	return root
}

type entry struct {
	hdr  *tar.Header
	data string
}

func read(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	for _, e := range layertest.Read(t, bytes.NewReader(b)) {
		out = append(out, entry{e.Header, string(e.Data)})
	}
	return out
}

func write(t *testing.T, l *Layer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := l.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestTreeKeepsWhatATreeHolds(t *testing.T) {
	root := tree(t)
	l := New()
	skipDevContents := func(rel string) bool { return filepath.Dir(rel) == "dev" }
	if err := l.AddTree(root, "", skipDevContents); err != nil {
		t.Fatal(err)
	}
	l.AddFile("usr/local/bin/added", 0o755, []byte("added"))
	entries := read(t, write(t, l))
	byName := map[string]*tar.Header{}
	var names []string
	for _, e := range entries {
		byName[e.hdr.Name] = e.hdr
		names = append(names, e.hdr.Name)
		if !e.hdr.ModTime.Equal(Epoch) {
			t.Errorf("%s: mtime %v, want %v", e.hdr.Name, e.hdr.ModTime, Epoch)
		}
		if e.hdr.Uname != "" || e.hdr.Gname != "" {
			t.Errorf("%s: owner names %q/%q kept", e.hdr.Name, e.hdr.Uname, e.hdr.Gname)
		}
	}
	want := []string{"dev/", "marked", "usr/", "usr/bin/", "usr/bin/alias", "usr/bin/link", "usr/bin/suid", "usr/bin/tool", "usr/local/", "usr/local/bin/", "usr/local/bin/added"}
	if len(names) != len(want) {
		t.Fatalf("entries = %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries = %q, want %q (sorted, parents made, dev/ emptied)", names, want)
		}
	}
	if h := byName["usr/bin/alias"]; h.Typeflag != tar.TypeReg {
		t.Errorf("the first name of a hard link (in name order) is not the file: %v", h.Typeflag)
	}
	if h := byName["usr/bin/tool"]; h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/alias" {
		t.Errorf("hard link = %v -> %q", h.Typeflag, h.Linkname)
	}
	if h := byName["usr/bin/link"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "tool" {
		t.Errorf("symlink = %v -> %q", h.Typeflag, h.Linkname)
	}
	if h := byName["usr/bin/suid"]; h.Mode != 0o4755 {
		t.Errorf("setuid file mode = %o", h.Mode)
	}
	if h := byName["marked"]; h.PAXRecords["SCHILY.xattr.user.berth"] != "yes" || h.Mode != 0o600 {
		t.Errorf("marked: xattrs %v mode %o", h.PAXRecords, h.Mode)
	}
	if h := byName["usr/local/bin/"]; h.Mode != 0o755 || h.Uid != 0 {
		t.Errorf("implicit parent: mode %o uid %d", h.Mode, h.Uid)
	}
	uid := os.Getuid()
	if h := byName["usr/bin/alias"]; h.Uid != uid {
		t.Errorf("tree owner uid %d, want %d (numeric owners kept)", h.Uid, uid)
	}
}

func TestSameInputsSameBytes(t *testing.T) {
	root := tree(t)
	build := func() []byte {
		l := New()
		if err := l.AddTree(root, "rootfs", nil); err != nil {
			t.Fatal(err)
		}
		l.AddSymlink("bin", "rootfs/usr/bin")
		l.AddFile("z", 0o644, []byte("z"))
		return write(t, l)
	}
	first := build()
	// Touching files changes nothing a layer records.
	if err := os.Chtimes(filepath.Join(root, "usr/bin/tool"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if second := build(); !bytes.Equal(first, second) {
		t.Error("the same tree written twice gives different bytes")
	}
}

func TestAddReplacesAndFileFromKeepsXattrs(t *testing.T) {
	root := tree(t)
	l := New()
	l.AddFile("bin/x", 0o644, []byte("old"))
	if err := l.AddFileFrom("/bin/x", filepath.Join(root, "marked"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.AddFileFrom("bin/y", filepath.Join(root, "usr/bin/suid"), -1); err != nil {
		t.Fatal(err)
	}
	entries := read(t, write(t, l))
	if len(entries) != 3 {
		t.Fatalf("entries = %d, want bin/, bin/x, bin/y", len(entries))
	}
	x := entries[1]
	if x.data != "m" || x.hdr.Mode != 0o755 || x.hdr.Uid != 0 || x.hdr.PAXRecords["SCHILY.xattr.user.berth"] != "yes" {
		t.Errorf("bin/x = %q mode %o uid %d pax %v", x.data, x.hdr.Mode, x.hdr.Uid, x.hdr.PAXRecords)
	}
	if y := entries[2]; y.hdr.Mode != 0o4755 {
		t.Errorf("bin/y took mode %o, want the source's 4755", y.hdr.Mode)
	}
	l.StripXattrs()
	if x := read(t, write(t, l))[1]; len(x.hdr.PAXRecords) != 0 {
		t.Errorf("StripXattrs left %v", x.hdr.PAXRecords)
	}
}

// File capabilities are security.* attributes: only root sets them.
func TestFileCapabilityKept(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting security.capability needs root")
	}
	setcap, err := exec.LookPath("setcap")
	root := t.TempDir()
	bin := filepath.Join(root, "ping")
	if err := os.WriteFile(bin, []byte("ping"), 0o755); err != nil {
		t.Fatal(err)
	}
	// cap_net_raw+ep as the kernel stores it (VFS_CAP_REVISION_2).
	capability := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
	if err == nil {
		if out, err := exec.Command(setcap, "cap_net_raw+ep", bin).CombinedOutput(); err != nil {
			t.Fatalf("setcap: %v: %s", err, out)
		}
	} else if err := unix.Setxattr(bin, "security.capability", capability, 0); err != nil {
		t.Skipf("cannot set a file capability here: %v", err)
	}
	want, err := lgetxattr(bin, "security.capability")
	if err != nil {
		t.Fatal(err)
	}
	l := New()
	if err := l.AddTree(root, "", nil); err != nil {
		t.Fatal(err)
	}
	entries := read(t, write(t, l))
	if got := entries[0].hdr.PAXRecords["SCHILY.xattr.security.capability"]; got != string(want) {
		t.Errorf("security.capability = %x, want %x", got, want)
	}
	// What an engine unpacking the layer sees: Go's reader fills Xattrs
	// from the same records.
	//nolint:staticcheck // Xattrs is what older unpackers (Docker 20.10) read.
	if got := entries[0].hdr.Xattrs["security.capability"]; got != string(want) {
		t.Errorf("Xattrs[security.capability] = %x, want %x", got, want)
	}
}
