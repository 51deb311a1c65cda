// Package load moves container images from the host's Docker engine into
// the containerd of a cluster's nodes, streaming one export to every node
// at once (no temporary files).
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/berth-dev/berth/cluster/provider"
)

// importCmd imports a tar stream on stdin into the namespace the kubelet
// uses, waiting (up to 60 s) for containerd in a node that is still
// booting.
var importCmd = []string{"sh", "-c", `for i in $(seq 600); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && break; sleep 0.1; done
exec ctr --namespace k8s.io images import --all-platforms -`}

// Images exports images from the engine once and imports the stream into
// every node in parallel. Nodes that already hold every image (same
// digest) are skipped; loaded lists the nodes that received the images.
// A node that certainly lacks the space for them is refused before
// anything is streamed (NoSpaceError).
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
	targets, err := nodesLacking(ctx, p, nodes, ids)
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	spaces, err := checkSpace(ctx, p, targets, images, infos)
	if err != nil {
		return nil, err
	}
	stream, err := p.SaveImages(ctx, images)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	return targets, importInto(ctx, p, targets, stream, images, infos, spaces)
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
	return importInto(ctx, p, nodes, archive, []string{"the archive"}, nil, make([]*nodeSpace, len(nodes)))
}

// importInto streams archive into every node's containerd at once. A node
// whose import fails is left as it was before (reclaim); its error says
// what happened there, and when it ran out of space, how much it had and
// needed (a NoSpaceError).
func importInto(ctx context.Context, p provider.Provider, nodes []string, archive io.Reader, names []string, infos []provider.ImageInfo, spaces []*nodeSpace) error {
	started := time.Now()
	writers := make([]io.Writer, len(nodes))
	pipes := make([]*io.PipeWriter, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		pr, pw := io.Pipe()
		writers[i], pipes[i] = pw, pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Exec(ctx, node, pr, nil, importCmd...)
			// Unblock the copy if this node stopped reading early.
			pr.CloseWithError(errors.New("node import ended"))
			if err != nil {
				errs[i] = importError(ctx, p, node, err, names, infos, spaces[i], started)
			}
		}()
	}
	_, copyErr := io.Copy(&fanOut{writers: writers}, archive)
	for _, pw := range pipes {
		pw.CloseWithError(copyErr)
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
	if copyErr != nil {
		return fmt.Errorf("streaming images: %w", copyErr)
	}
	return nil
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

// fanOut writes to every writer still accepting data: one node failing
// (its error is reported by its own import) does not stop the others.
type fanOut struct {
	writers []io.Writer
	dead    []bool
}

func (f *fanOut) Write(p []byte) (int, error) {
	if f.dead == nil {
		f.dead = make([]bool, len(f.writers))
	}
	alive := 0
	for i, w := range f.writers {
		if f.dead[i] {
			continue
		}
		if _, err := w.Write(p); err != nil {
			f.dead[i] = true
			continue
		}
		alive++
	}
	if alive == 0 {
		return 0, errors.New("every node stopped reading")
	}
	return len(p), nil
}
