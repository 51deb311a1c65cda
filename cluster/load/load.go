// Package load moves container images from the host's Docker engine into
// the containerd of a cluster's nodes, streaming one export to every node
// at once (no temporary files).
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

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
func Images(ctx context.Context, p provider.Provider, nodes []string, images []string) (loaded []string, err error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no nodes to load into")
	}
	ids := map[string]string{}
	for _, img := range images {
		id, err := p.ImageID(ctx, img)
		if err != nil {
			return nil, err
		}
		if id == "" {
			return nil, fmt.Errorf("image %q is not in the local Docker engine: build or pull it first (docker images lists what is there)", img)
		}
		ids[img] = id
	}
	targets, err := nodesLacking(ctx, p, nodes, ids)
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	stream, err := p.SaveImages(ctx, images)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	return targets, Archive(ctx, p, targets, stream)
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
// every node in parallel.
func Archive(ctx context.Context, p provider.Provider, nodes []string, archive io.Reader) error {
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
			if err != nil {
				errs[i] = fmt.Errorf("loading into node %s: %w", node, err)
			}
			// Unblock the copy if this node stopped reading early.
			pr.CloseWithError(errors.New("node import ended"))
		}()
	}
	_, copyErr := io.Copy(&fanOut{writers: writers}, archive)
	for _, pw := range pipes {
		pw.CloseWithError(copyErr)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if copyErr != nil {
		return fmt.Errorf("streaming images: %w", copyErr)
	}
	return nil
}

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
