package nodeimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWithoutPackagesDropsTheirStanzas(t *testing.T) {
	status := "Package: bash\nStatus: install ok installed\n\nPackage: tzdata\nStatus: install ok installed\nVersion: 2025b\n\nPackage: tar\nStatus: install ok installed\n"
	got := string(withoutPackages([]byte(status), []string{"tzdata"}))
	want := "Package: bash\nStatus: install ok installed\n\nPackage: tar\nStatus: install ok installed\n"
	if got != want {
		t.Errorf("status =\n%s\nwant\n%s", got, want)
	}
}

// A package's /bin/x is usr/bin/x in a merged-/usr tree.
func TestInTreeFollowsMergedUsr(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	for in, want := range map[string]string{"/bin/login": "usr/bin/login", "/usr/sbin/useradd": "usr/sbin/useradd", "/.": "", "/etc/pam.d/login": "etc/pam.d/login"} {
		if got := inTree(root, in); got != want {
			t.Errorf("inTree(%q) = %q, want %q", in, got, want)
		}
	}
}

// On the cached base (when this machine has one): what leaves, and that
// what the node runs stays.
func TestLeftOutKeepsWhatTheNodeRuns(t *testing.T) {
	base, _ := os.UserCacheDir()
	trees, _ := filepath.Glob(filepath.Join(base, "berth", "rootfs-*"))
	var root string
	for _, tr := range trees {
		if _, err := os.Stat(filepath.Join(tr, completeMarker)); err == nil {
			root = tr
		}
	}
	if root == "" {
		t.Skip("no cached node base filesystem")
	}
	gone, status, err := leftOut(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"usr/bin/busybox", "usr/sbin/useradd", "usr/share/zoneinfo/Etc/UTC", "var/lib/dpkg/info/bash.list", "usr/sbin/arpd", "usr/lib/x86_64-linux-gnu/libdb-5.3.so"} {
		if !gone[p] {
			t.Errorf("%s is kept", p)
		}
	}
	for _, p := range []string{"bin", "lib", "sbin", "lib64", "usr/bin/sh", "usr/bin/dash", "usr/bin/bash", "usr/bin/tar", "usr/bin/mount", "usr/sbin/nft", "usr/sbin/xtables-nft-multi", "usr/sbin/conntrack", "usr/bin/ip",
		"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libnftables.so.1.1.0", "usr/lib/x86_64-linux-gnu/libmount.so.1.1.0", "var/lib/dpkg/status"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil && gone[p] {
			t.Errorf("%s is left out", p)
		}
	}
	if strings.Contains(string(status), "Package: tzdata\n") || !strings.Contains(string(status), "Package: bash\n") {
		t.Error("the status file does not list exactly the kept packages")
	}
}
