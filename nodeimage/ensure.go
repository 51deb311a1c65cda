package nodeimage

import (
	"context"
	"fmt"
	"io"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// Ensurer makes sure a node image exists in the container engine before
// a create uses it: an image already there is used as it is; a missing
// image of a supported release is built from source.
type Ensurer struct {
	Store Store
	// Build is the template of a build (mirror, source tree, cache, log,
	// progress); Release and Image are filled per image.
	Build Options
	// Out receives one line saying what was done (and, before a build,
	// what it costs).
	Out io.Writer
}

// ReleaseOf returns the supported release whose default image ref is.
func ReleaseOf(ref string) (versions.Release, bool) {
	for _, r := range versions.Releases {
		if r.NodeImage() == ref {
			return r, true
		}
	}
	return versions.Release{}, false
}

// Ensure makes sure image exists.
func (e *Ensurer) Ensure(ctx context.Context, image string) error {
	out := e.Out
	if out == nil {
		out = io.Discard
	}
	labels, ok, err := e.Store.ImageLabels(ctx, image)
	if err != nil {
		return err
	}
	release, known := ReleaseOf(image)
	if ok {
		if known && e.stale(release, labels) {
			fmt.Fprintf(out, "warning: node image %s was built from other sources than this tree's; rebuild it with `berth build node-image --kubernetes-version %s`\n", image, release.Kubernetes)
		}
		return nil
	}
	if !known {
		return fmt.Errorf("node image %q is not in Docker: build it with `berth build node-image --image %s --kubernetes-version VERSION`, or load it with `docker load`", image, image)
	}
	fmt.Fprintf(out, "Node image %s not found locally: building it from source (the first build on a machine takes 10–25 minutes on 2 cores; later ones reuse the caches)\n", image)
	opts := e.Build
	opts.Release = release
	opts.Image = image
	_, err = Build(ctx, e.Store, opts)
	if err != nil {
		return fmt.Errorf("building node image %s: %w", image, err)
	}
	return nil
}

// stale reports whether berth runs from a source tree whose recipe for
// release differs from the image's.
func (e *Ensurer) stale(r versions.Release, labels map[string]string) bool {
	src := e.Build.SourceDir
	if src == "" {
		var err error
		if src, err = FindSourceDir(); err != nil {
			return false
		}
	}
	mirror := e.Build.DebianMirror
	if mirror == "" {
		var err error
		if mirror, err = MirrorFromAptSources("/"); err != nil {
			return false
		}
	}
	recipe, err := Recipe(src, mirror, r)
	return err == nil && labels[nodeconfig.LabelNodeRecipe] != recipe
}
