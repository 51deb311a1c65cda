// Package load moves container images from the host's Docker engine into
// the containerd of a cluster's nodes: one export, written into every
// node at once and imported there in parallel.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/berth-dev/berth/cluster/provider"
)

// importDir is where an archive is written in a node before containerd
// imports it: on the node's /var volume, where containerd keeps its
// content, so a load that does not fit fails there rather than in a
// smaller tmpfs.
const importDir = "/var/lib"

// importScript imports the archive file $1 into the namespace the
// kubelet uses, waiting (up to 60 s) for containerd in a node that is
// still booting, and removes the file whatever the import's outcome.
// --local: ctr reads the archive and writes content and snapshots itself
// (under a lease, as the transfer service does) instead of streaming it
// to containerd's transfer service — measured in a node, 100 MB: 0.34 s
// and 0.16 CPU-s against 0.67 s and 0.31 CPU-s.
// With "shared" as $2 the file is the cluster's single copy in
// provider.SharedDir: it is left for the caller, and a node that does not
// see it exits 97 (it lacks the shared volume).
const importScript = `[ -f "$1" ] || exit 97
for i in $(seq 600); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --namespace k8s.io images import --local --all-platforms "$1"; rc=$?
[ "$2" = shared ] || rm -f "$1"
exit $rc`

// notShared is importScript's exit code for a node without the archive
// in its shared directory.
const notShared = 97

// Images exports images from the engine once and imports the export into
// every node in parallel. Nodes that already hold every image (same
// digest) are skipped; loaded lists the nodes that received the images.
// A node that certainly lacks the space for them is refused before
// anything is written into it (NoSpaceError). The export runs while the
// nodes are checked (the engine takes a few hundred milliseconds before
// it sends the first byte); it is thrown away when no node needs it.
func Images(ctx context.Context, p provider.Provider, nodes []string, images []string) (loaded []string, err error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no nodes to load into")
	}
	ids := map[string]string{}
	infos := make([]provider.ImageInfo, 0, len(images))
	for _, img := range images {
		info, err := p.ImageInfo(ctx, img)
		if err != nil {
			return nil, err
		}
		if info == nil {
			return nil, fmt.Errorf("image %q is not in the local Docker engine: build or pull it first (docker images lists what is there)", img)
		}
		ids[img] = info.ID
		infos = append(infos, *info)
	}
	started := time.Now()
	export := startExport(ctx, p, images)
	defer export.discard()
	targets, err := nodesLacking(ctx, p, nodes, ids)
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	spaces, err := checkSpace(ctx, p, targets, images, infos)
	if err != nil {
		return nil, err
	}
	slog.Debug("nodes checked", "lacking", targets, "took", time.Since(started).Round(time.Millisecond))
	sp, err := export.wait()
	if err != nil {
		return nil, err
	}
	slog.Debug("images exported", "bytes", sp.size, "at", time.Since(started).Round(time.Millisecond))
	return targets, importInto(ctx, p, targets, sp, images, infos, spaces)
}

// spool is an archive in a host temporary file (or the caller's own
// regular file), read at any offset.
type spool struct {
	src     io.ReaderAt
	size    int64
	cleanup func()
}

// export is an engine export being spooled in the background.
type export struct {
	cancel context.CancelFunc
	done   chan struct{}
	spool  spool
	err    error
}

// startExport spools the engine's export of images to a temporary file
// in the background.
func startExport(ctx context.Context, p provider.Provider, images []string) *export {
	ctx, cancel := context.WithCancel(ctx)
	e := &export{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		stream, err := p.SaveImages(ctx, images)
		if err != nil {
			e.err = err
			return
		}
		defer stream.Close()
		e.spool, e.err = sized(stream)
	}()
	return e
}

// wait returns the finished spool; discard still removes it.
func (e *export) wait() (spool, error) {
	<-e.done
	return e.spool, e.err
}

// discard stops the export if it still runs and removes its file.
func (e *export) discard() {
	e.cancel()
	<-e.done
	if e.spool.cleanup != nil {
		e.spool.cleanup()
	}
}

// hasImageScript exits 0 if containerd has the image's config blob (its
// digest is Docker's image ID) under the image's name.
const hasImageScript = `ctr -n k8s.io content get "$1" >/dev/null 2>&1 && ctr -n k8s.io images ls -q | grep -qxF "$2"`

// nodesLacking returns the nodes that do not already have every image
// with the same digest; the others are skipped.
func nodesLacking(ctx context.Context, p provider.Provider, nodes []string, ids map[string]string) ([]string, error) {
	lacking := make([]bool, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for img, id := range ids {
				name, err := reference.ParseNormalizedNamed(img)
				if err != nil {
					lacking[i] = true
					return
				}
				full := reference.TagNameOnly(name).String()
				if p.Exec(ctx, node, nil, nil, "sh", "-c", hasImageScript, "_", id, full) != nil {
					lacking[i] = true
					return
				}
			}
		}()
	}
	wg.Wait()
	var out []string
	for i, node := range nodes {
		if lacking[i] {
			out = append(out, node)
		}
	}
	return out, nil
}

// Archive imports one image archive (docker save or OCI layout) into
// every node in parallel. What its images need is not known beforehand:
// no space check.
func Archive(ctx context.Context, p provider.Provider, nodes []string, archive io.Reader) error {
	sp, err := sized(archive)
	if err != nil {
		return err
	}
	defer sp.cleanup()
	return importInto(ctx, p, nodes, sp, []string{"the archive"}, nil, make([]*nodeSpace, len(nodes)))
}

// importInto imports archive into every node's containerd at once. The
// archive is spooled once to a host temporary file (the engine's archive
// endpoint needs each file's size before its content), written into each
// node through that endpoint — not an exec's stdin, which is ~10x slower
// for bulk data (see provider/docker WriteFile) — and imported there from
// the file. A node whose import fails is left as it was before (the
// file removed, reclaim); its error says what happened there, and when it
// ran out of space, how much it had and needed (a NoSpaceError).
func importInto(ctx context.Context, p provider.Provider, nodes []string, sp spool, names []string, infos []provider.ImageInfo, spaces []*nodeSpace) error {
	started := time.Now()
	src, size := sp.src, sp.size
	name := fmt.Sprintf("berth-import-%d-%d.tar", os.Getpid(), time.Now().UnixNano())
	// One copy in the cluster's shared volume serves every node; a
	// cluster made before berth had it takes one copy per node.
	shared := false
	if len(nodes) > 1 {
		sharedPath := provider.SharedDir + "/" + name
		defer func() { _ = p.Exec(context.WithoutCancel(ctx), nodes[0], nil, nil, "rm", "-f", sharedPath) }()
		if err := p.WriteFile(ctx, nodes[0], provider.SharedDir, name, size, io.NewSectionReader(src, 0, size)); err != nil {
			slog.Debug("writing into each node instead of the shared volume", "err", err)
		} else {
			shared = true
			slog.Debug("archive written to the shared volume", "at", time.Since(started).Round(time.Millisecond))
		}
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				slog.Debug("import ended", "node", node, "at", time.Since(started).Round(time.Millisecond))
			}()
			if shared {
				err := p.Exec(ctx, node, nil, nil, "sh", "-c", importScript, "_", provider.SharedDir+"/"+name, "shared")
				var ee *provider.ExecError
				if !errors.As(err, &ee) || ee.ExitCode != notShared {
					if err != nil {
						errs[i] = importError(ctx, p, node, err, names, infos, spaces[i], started)
					}
					return
				}
			}
			errs[i] = importOne(ctx, p, node, name, src, size, names, infos, spaces[i], started)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var ok []string
		for i, node := range nodes {
			if errs[i] == nil {
				ok = append(ok, node)
			}
		}
		if len(ok) > 0 {
			return fmt.Errorf("%w\n(loaded into %s)", err, strings.Join(ok, ", "))
		}
		return err
	}
	return nil
}

// importOne writes the archive into node's own /var and imports it there.
func importOne(ctx context.Context, p provider.Provider, node, name string, src io.ReaderAt, size int64, names []string, infos []provider.ImageInfo, space *nodeSpace, started time.Time) error {
	path := importDir + "/" + name
	if err := p.WriteFile(ctx, node, importDir, name, size, io.NewSectionReader(src, 0, size)); err != nil {
		// A partly written file (a full disk) must not stay behind.
		_ = p.Exec(context.WithoutCancel(ctx), node, nil, nil, "rm", "-f", path)
		return copyError(ctx, p, node, err, names, infos, space)
	}
	slog.Debug("archive written", "node", node, "at", time.Since(started).Round(time.Millisecond))
	if err := p.Exec(ctx, node, nil, nil, "sh", "-c", importScript, "_", path); err != nil {
		if ctx.Err() != nil {
			_ = p.Exec(context.WithoutCancel(ctx), node, nil, nil, "rm", "-f", path)
		}
		return importError(ctx, p, node, err, names, infos, space, started)
	}
	return nil
}

// copyError explains a failed copy of the archive into a node (before
// containerd saw any of it).
func copyError(ctx context.Context, p provider.Provider, node string, err error, names []string, infos []provider.ImageInfo, before *nodeSpace) error {
	if !strings.Contains(err.Error(), noSpace) {
		return fmt.Errorf("loading into node %s: %w", node, err)
	}
	e := &NoSpaceError{Node: node, Images: names, Import: "copying the archive into the node: " + noSpace, Free: -1}
	if s, err := readSpace(ctx, p, node); err == nil {
		e.Free = s.free
	}
	if before != nil {
		e.Need = lacking(infos, before.blobs)
	}
	return e
}

// sized returns the archive as something read at any offset, with its
// size: a regular file as it is, any other stream spooled to a temporary
// file (removed by cleanup).
func sized(archive io.Reader) (spool, error) {
	if f, ok := archive.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil {
				return spool{src: io.NewSectionReader(f, off, info.Size()-off), size: info.Size() - off, cleanup: func() {}}, nil
			}
		}
	}
	f, err := os.CreateTemp("", "berth-load-*.tar")
	if err != nil {
		return spool{}, fmt.Errorf("making a temporary file for the images: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	size, err := io.Copy(f, archive)
	if err != nil {
		cleanup()
		return spool{}, fmt.Errorf("exporting images to %s: %w", f.Name(), err)
	}
	return spool{src: f, size: size, cleanup: cleanup}, nil
}

// importError explains a node's failed import, after making sure the
// node holds nothing of it (before: its space before the load, nil if
// unknown).
func importError(ctx context.Context, p provider.Provider, node string, err error, names []string, infos []provider.ImageInfo, before *nodeSpace, started time.Time) error {
	var c cleanup
	if ctx.Err() == nil {
		c = reclaim(ctx, p, node, started)
	}
	var ee *provider.ExecError
	if !errors.As(err, &ee) {
		return fmt.Errorf("loading into node %s: %w", node, err)
	}
	slog.Debug("import failed", "node", node, "stderr", ee.Stderr)
	msg := ctrError(ee.Stderr)
	if !strings.HasSuffix(msg, noSpace) {
		if len(c.Deleted)+len(c.Kept) > 0 {
			msg += "; " + c.String()
		}
		return fmt.Errorf("loading into node %s: %s", node, msg)
	}
	e := &NoSpaceError{Node: node, Images: names, Import: msg, Cleanup: c, Free: -1}
	if s, err := readSpace(ctx, p, node); err == nil {
		e.Free = s.free
	}
	if before != nil {
		e.Need = lacking(infos, before.blobs)
	}
	return e
}

// ctrError keeps what ctr said about its failure: its last line that is
// not a log message (containerd's deprecation warnings come first). Out
// of space, only the step that failed is kept ("failed to extract
// layer"), not the paths and digests.
func ctrError(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimPrefix(strings.TrimSpace(lines[i]), "ctr: ")
		if l == "" || strings.HasPrefix(l, "time=") {
			continue
		}
		if strings.HasSuffix(l, noSpace) {
			if cut := firstStep(l); cut > 0 {
				l = strings.TrimSpace(l[:cut]) + ": " + noSpace
			}
		}
		return "containerd: " + l
	}
	return "the import failed without a message"
}

// firstStep returns where the first clause of an error chain ends: the
// first ':' or '(' outside double quotes, or -1.
func firstStep(s string) int {
	quoted := false
	for i, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case !quoted && (r == ':' || r == '('):
			return i
		}
	}
	return -1
}

// noSpace ends the error of a write to a full file system.
const noSpace = "no space left on device"
