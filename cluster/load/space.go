package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/cluster/provider"
)

// What a load needs on a node: containerd keeps each layer twice, as the
// archive it was sent (in its content store) and unpacked (an overlayfs
// snapshot), both under /var/lib/containerd — the node's /var volume;
// while it imports, the archive written into the node (importDir, the
// same volume) is a third copy.
// The unpacked files alone take at least the image size Docker reports
// (the sum of the layers' file sizes), so a node with less free space
// than that for the layers it lacks cannot take the image: the load
// refuses it before streaming anything. Above that the load is tried; when
// it runs out of space anyway, containerd's transfer service deletes the
// lease it imported under and its garbage collector removes the partial
// content, ingests and snapshots; berth waits for that collection
// (reclaim), so the node is as before when the error is shown, and the
// error says so.

// containerdRoot is where the node's containerd keeps content and
// snapshots (on the node's /var volume).
const containerdRoot = "/var/lib/containerd"

// spaceScript prints the bytes available to containerd ("AVAIL BSIZE"
// blocks) and the content blobs it holds (digest and human size).
const spaceScript = `stat -f -c '%a %S' ` + containerdRoot + ` && ctr -n k8s.io content ls 2>/dev/null`

// nodeSpace is what a node has for new images.
type nodeSpace struct {
	// free is the bytes available under containerd's root.
	free int64
	// blobs are the content digests the node holds and their sizes.
	blobs map[string]int64
}

// parseSpace reads spaceScript's output.
func parseSpace(out string) (nodeSpace, error) {
	s := nodeSpace{blobs: map[string]int64{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	if !sc.Scan() {
		return s, errors.New("no output")
	}
	f := strings.Fields(sc.Text())
	if len(f) != 2 {
		return s, fmt.Errorf("unexpected file system statistics %q", sc.Text())
	}
	avail, err1 := strconv.ParseInt(f[0], 10, 64)
	bsize, err2 := strconv.ParseInt(f[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("reading file system statistics %q: %w", sc.Text(), err)
	}
	s.free = avail * bsize
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[0], "sha256:") {
			continue // the header, or a line we do not understand
		}
		if size, err := parseHumanSize(f[1]); err == nil {
			s.blobs[f[0]] = size
		}
	}
	return s, sc.Err()
}

// parseHumanSize reads a size as ctr prints it (go-units' HumanSize:
// "93B", "1.024kB", "205.3MB"); binary units ("4KiB") are accepted too.
func parseHumanSize(s string) (int64, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	mult := map[string]float64{
		"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}[s[i:]]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit in size %q", s)
	}
	return int64(n * mult), nil
}

// lacking returns the least a node holding blobs needs to take images
// unpacked: per image, its size less the layers the node already holds,
// and the largest of those (images may share layers, so their sum is no
// lower bound).
func lacking(images []provider.ImageInfo, blobs map[string]int64) int64 {
	var most int64
	for _, img := range images {
		n := img.Size
		for _, l := range img.Layers {
			n -= blobs[l]
		}
		most = max(most, n)
	}
	return most
}

// NoSpaceError is a node without the space for the images being loaded.
type NoSpaceError struct {
	Node   string
	Images []string
	// Free is the bytes available to the node's containerd (after a
	// failed import: afterwards; -1 if unknown).
	Free int64
	// Need is the least the images need there (unpacked, less the layers
	// the node holds); about three times that while loading: the archive
	// written into the node, containerd's copy of it, the unpacked files.
	Need int64
	// Import is containerd's error when the import itself ran out of
	// space; empty when the load was refused before streaming.
	Import string
	// Cleanup says what was done so that the node is left as before.
	Cleanup cleanup
}

func (e *NoSpaceError) subject() string {
	if len(e.Images) == 1 {
		return "it needs"
	}
	return "they need"
}

// cleanup is what reclaim found and did after a failed import.
type cleanup struct {
	// Deleted are the leases of the import berth deleted (containerd
	// had not: it died mid-import).
	Deleted []string
	// Kept are the leases berth could not delete, and why.
	Kept []string
	Err  error
}

// String completes "... the failed load wrote" sentences.
func (c cleanup) String() string {
	switch {
	case len(c.Kept) > 0:
		return fmt.Sprintf("what the failed load wrote is still held by containerd lease %s (%v): delete it with `ctr -n k8s.io leases delete --sync %s` in the node",
			strings.Join(c.Kept, ", "), c.Err, strings.Join(c.Kept, " "))
	case len(c.Deleted) > 0:
		return fmt.Sprintf("berth removed what the failed load wrote (containerd lease %s); the node is as before", strings.Join(c.Deleted, ", "))
	}
	return "containerd removed what the failed load wrote; the node is as before"
}

func (e *NoSpaceError) Error() string {
	var b strings.Builder
	imgs := strings.Join(e.Images, ", ")
	if e.Import == "" {
		fmt.Fprintf(&b, "node %s has %s free on its /var, too little for %s: %s at least %s there unpacked (about %s while loading: the archive, containerd's copy of it and the unpacked files); nothing was loaded",
			e.Node, mb(e.Free), imgs, e.subject(), mb(e.Need), mb(3*e.Need))
	} else {
		fmt.Fprintf(&b, "node %s ran out of space loading %s (%s)", e.Node, imgs, e.Import)
		if e.Free >= 0 {
			fmt.Fprintf(&b, ": %s is free on its /var", mb(e.Free))
		}
		if e.Need > 0 {
			fmt.Fprintf(&b, ", %s about %s there while loading (%s unpacked, plus the archive and containerd's copy of it)", e.subject(), mb(3*e.Need), mb(e.Need))
		}
		b.WriteString(". " + e.Cleanup.String())
	}
	fmt.Fprintf(&b, ". Free space on the node's /var (%s, on a Docker volume: `docker system df` shows what fills the Docker host's disk), or leave %s out with --nodes", containerdRoot, e.Node)
	return b.String()
}

func mb(n int64) string {
	return fmt.Sprintf("%d MB", (n+500_000)/1_000_000)
}

// checkSpace reads every target's free space and refuses the load when a
// node certainly cannot take the images. It returns each node's space
// (nil when unknown: the check is skipped for it, and reports nothing).
func checkSpace(ctx context.Context, p provider.Provider, nodes, names []string, images []provider.ImageInfo) ([]*nodeSpace, error) {
	spaces := make([]*nodeSpace, len(nodes))
	errs := make([]error, len(nodes))
	parallel(nodes, func(i int, node string) {
		s, err := readSpace(ctx, p, node)
		if err != nil {
			slog.Debug("free space check skipped", "node", node, "err", err)
			return
		}
		spaces[i] = &s
		if need := lacking(images, s.blobs); need > s.free {
			errs[i] = &NoSpaceError{Node: node, Images: names, Free: s.free, Need: need}
		}
	})
	return spaces, errors.Join(errs...)
}

// parallel runs f for every node at once and waits for them.
func parallel(nodes []string, f func(i int, node string)) {
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i, node)
		}()
	}
	wg.Wait()
}

func readSpace(ctx context.Context, p provider.Provider, node string) (nodeSpace, error) {
	var out strings.Builder
	if err := p.Exec(ctx, node, nil, &out, "sh", "-c", spaceScript); err != nil {
		return nodeSpace{}, fmt.Errorf("reading the free space of node %s: %w", node, err)
	}
	s, err := parseSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("reading the free space of node %s: %w", node, err)
	}
	return s, nil
}

// leaseScript lists containerd's leases in the namespace images are
// imported into.
const leaseScript = `ctr -n k8s.io leases ls 2>/dev/null`

// gcExpire is the label of a lease that expires: the transfer service's
// leases for imports and pulls have one, the CRI plugin's leases for
// sandboxes and containers do not.
const gcExpire = "containerd.io/gc.expire="

// importLeases picks, from `ctr leases ls` output, the leases a failed
// import made: expiring ones created at or after since.
func importLeases(out string, since time.Time) []string {
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] == "ID" {
			continue
		}
		created, err := time.Parse(time.RFC3339, f[1])
		if err != nil || created.Before(since.Truncate(time.Second)) || !strings.Contains(f[2], gcExpire) {
			continue
		}
		ids = append(ids, f[0])
	}
	return ids
}

// reclaim makes sure a node whose import failed is left as it was.
// containerd's transfer service imports under a lease of its own and
// deletes it when the import fails; its garbage collector then removes
// the partial content, ingests and snapshots (no other trace is left: no
// image record, no files of berth's, which streams without temporary
// files). But that collection runs in the background, seconds later
// (checked: 0 bytes free right after a failed load, everything back a
// moment later), and if containerd died mid-import the lease remains.
// So reclaim deletes the import's leftover leases, or else an empty lease
// of its own, with --sync: containerd then runs a collection and answers
// when it is done. A lease is the import's if it expires (the CRI
// plugin's sandbox and container leases do not) and was created since
// the load started.
//
// Free space is not compared with before the load: a node's /var is
// usually on the Docker host's disk, which everything else on the host
// fills and empties meanwhile.
func reclaim(ctx context.Context, p provider.Provider, node string, since time.Time) cleanup {
	var c cleanup
	var out strings.Builder
	if err := p.Exec(ctx, node, nil, &out, "sh", "-c", leaseScript); err != nil {
		slog.Debug("listing leases after a failed load", "node", node, "err", err)
	}
	ids := importLeases(out.String(), since)
	if len(ids) == 0 {
		id := fmt.Sprintf("berth-load-gc-%d", time.Now().UnixNano())
		if err := p.Exec(ctx, node, nil, nil, "sh", "-c", gcScript, "_", id); err != nil {
			slog.Debug("collecting garbage after a failed load", "node", node, "err", err)
		}
		return c
	}
	slog.Info("deleting what a failed load left", "node", node, "leases", ids)
	if err := p.Exec(ctx, node, nil, nil, append([]string{"ctr", "-n", "k8s.io", "leases", "delete", "--sync"}, ids...)...); err != nil {
		c.Kept, c.Err = ids, err
		return c
	}
	c.Deleted = ids
	return c
}

// gcScript makes containerd collect garbage now and waits for it: a
// synchronous delete of an (empty) lease runs a collection.
const gcScript = `ctr -n k8s.io leases create --id "$1" >/dev/null && ctr -n k8s.io leases delete --sync "$1" >/dev/null`
