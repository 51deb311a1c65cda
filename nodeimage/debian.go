package nodeimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// DebianTree is a minimal Debian root filesystem made with debootstrap
// (--variant=minbase) and cached by everything that shapes it.
type DebianTree struct {
	// Prefix names the cache directory: Prefix-<hash>.
	Prefix string
	// Suite defaults to versions.DebianSuite.
	Suite    string
	Mirror   string
	Packages []string
	// Prune are globs (relative to the tree) removed after debootstrap.
	Prune []string
	// Setup, when set, finishes the tree before it is marked complete
	// (users, files); Version names what it does, so a change of Setup
	// makes a new tree.
	Setup   func(ctx context.Context, dir string) error
	Version string
}

// ErrDebootstrapNeedsRoot is returned when a tree must be made and the
// process is not root.
var ErrDebootstrapNeedsRoot = errors.New("debootstrap needs root: run this once as root (sudo)")

// completeMarker marks a finished tree; it is not part of the tree.
const completeMarker = ".berth-complete"

func (t DebianTree) suite() string {
	if t.Suite != "" {
		return t.Suite
	}
	return versions.DebianSuite
}

// Dir is where the tree is cached in cacheDir.
func (t DebianTree) Dir(cacheDir string) string {
	key := t.suite() + "|" + t.Mirror + "|" + runtime.GOARCH + "|" + strings.Join(t.Packages, ",") + "|" + strings.Join(t.Prune, ",")
	if t.Version != "" {
		key += "|" + t.Version
	}
	h := sha256.Sum256([]byte(key))
	return filepath.Join(cacheDir, t.Prefix+"-"+hex.EncodeToString(h[:])[:12])
}

// Ensure returns the cached tree, making it first if needed (as root,
// with debootstrap). Trees of the same Prefix made for other inputs are
// removed: they are ~100 MB each and never used again.
func (t DebianTree) Ensure(ctx context.Context, cacheDir string, log *slog.Logger) (string, error) {
	dir := t.Dir(cacheDir)
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err == nil {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", ErrDebootstrapNeedsRoot
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("making a Debian root filesystem needs debootstrap: apt-get install debootstrap (or run hack/install-deps.sh)")
	}
	if t.Mirror == "" {
		return "", fmt.Errorf("no Debian mirror given")
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	args := []string{"--variant=minbase", "--include=" + strings.Join(t.Packages, ","), "--components=main", t.suite(), tmp, t.Mirror}
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	log.Info("running debootstrap", "suite", t.suite(), "mirror", t.Mirror)
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("debootstrap %s from %s: %w\n%s", t.suite(), t.Mirror, err, tail)
	}
	if t.Setup != nil {
		if err := t.Setup(ctx, tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return "", err
		}
	}
	for _, p := range t.Prune {
		matches, _ := filepath.Glob(filepath.Join(tmp, p))
		for _, m := range matches {
			_ = os.RemoveAll(m)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	if old, err := filepath.Glob(filepath.Join(cacheDir, t.Prefix+"-*")); err == nil {
		for _, o := range old {
			if o != dir && !strings.HasSuffix(o, ".tmp") {
				_ = os.RemoveAll(o)
			}
		}
	}
	return dir, nil
}

// PackageVersion reads the version of an installed package from a
// tree's dpkg database ("1:1.35.0-4+b3"); ok is false when it is not
// installed.
func PackageVersion(root, pkg string) (version string, ok bool, err error) {
	f, err := os.Open(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	return packageVersion(f, pkg)
}

func packageVersion(r io.Reader, pkg string) (string, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var name, version, status string
	flush := func() bool {
		found := name == pkg && strings.HasSuffix(status, " installed")
		name, version, status = "", "", ""
		return found
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			v := version
			if flush() {
				return v, true, nil
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			switch k {
			case "Package":
				name = v
			case "Version":
				version = v
			case "Status":
				status = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, err
	}
	v := version
	if flush() {
		return v, true, nil
	}
	return "", false, nil
}

// UpstreamVersion strips a Debian version's epoch and revision:
// "1:1.35.0-4+b3" is upstream's 1.35.0.
func UpstreamVersion(v string) string {
	if _, rest, ok := strings.Cut(v, ":"); ok {
		v = rest
	}
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	return v
}
