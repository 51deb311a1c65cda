package nodeimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// ReleaseRepo is where berth's release publishes the node image of every
// supported version (tag: the Kubernetes version), for machines that
// should not compile it. BERTH_NODE_IMAGE_REPO overrides it (a mirror, a
// local registry).
const ReleaseRepo = "ghcr.io/berth-dev/node"

// releaseRepo is the repository to pull release images from.
func releaseRepo() string {
	if r := os.Getenv("BERTH_NODE_IMAGE_REPO"); r != "" {
		return r
	}
	return ReleaseRepo
}

// pullStallTimeout bounds how long a pull may go without a word from the
// engine before it is given up: an unreachable or unpublished image must
// fall back to a build within seconds, not after TCP timeouts.
var pullStallTimeout = 15 * time.Second

// Puller is what pulling needs from the container engine.
type Puller interface {
	PullImage(ctx context.Context, ref string, out io.Writer) error
	TagImage(ctx context.Context, src, dst string) error
	RemoveImage(ctx context.Context, ref string) error
}

// EngineStore is the engine as the Ensurer needs it.
type EngineStore interface {
	Store
	Puller
}

// How says how a node image was made available.
type How string

const (
	FoundLocally How = "found locally"
	Pulled       How = "pulled"
	Built        How = "built from source"
)

// Ensurer makes sure a node image exists in the container engine before
// a create uses it, in this order: an image already there is used as it
// is; a missing one is pulled (a user's reference, or the release
// repository's image of a supported version); only when no pull succeeds
// is a supported version's image built from source.
type Ensurer struct {
	Store EngineStore
	// Build is the template of a build (mirror, source tree, cache, log,
	// progress); Release and Image are filled per image.
	Build Options
	// Out receives what was done, pull progress and, before a build, what
	// it costs.
	Out io.Writer

	// build is Build; tests replace it.
	build func(ctx context.Context, store Store, opts Options) (*Result, error)
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
	_, err := e.EnsureHow(ctx, image)
	return err
}

// EnsureHow makes sure image exists and says how.
func (e *Ensurer) EnsureHow(ctx context.Context, image string) (How, error) {
	out := e.Out
	if out == nil {
		out = io.Discard
	}
	labels, ok, err := e.Store.ImageLabels(ctx, image)
	if err != nil {
		return "", err
	}
	release, known := ReleaseOf(image)
	if ok {
		if known && e.expectedRecipe(release) != "" && labels[nodeconfig.LabelNodeRecipe] != e.expectedRecipe(release) {
			fmt.Fprintf(out, "warning: node image %s was built from other sources than this tree's; rebuild it with `berth build node-image --kubernetes-version %s`\n", image, release.Kubernetes)
		}
		return FoundLocally, nil
	}
	if !known {
		// A reference the user chose: pull it, or fail before anything
		// of the cluster is made.
		fmt.Fprintf(out, "Node image %s not found locally: pulling it\n", image)
		if err := e.pull(ctx, image, out); err != nil {
			return "", fmt.Errorf("node image %s is neither in Docker nor pullable: %w\n(check the reference and that its registry answers; or build one with `berth build node-image --image %s`)", image, err, image)
		}
		return Pulled, nil
	}
	remote := releaseRepo() + ":" + release.Kubernetes
	fmt.Fprintf(out, "Node image %s not found locally: trying %s\n", image, remote)
	if why := e.pullRelease(ctx, remote, image, release, out); why == nil {
		fmt.Fprintf(out, "Pulled %s as %s\n", remote, image)
		return Pulled, nil
	} else if ctx.Err() != nil {
		return "", ctx.Err()
	} else {
		fmt.Fprintf(out, "Could not use %s (%v): building %s from source instead — the first build on a machine takes about 10 minutes on 2 cores; later builds reuse the caches\n", remote, why, image)
	}
	opts := e.Build
	opts.Release = release
	opts.Image = image
	build := e.build
	if build == nil {
		build = Build
	}
	if _, err := build(ctx, e.Store, opts); err != nil {
		return "", fmt.Errorf("building node image %s: %w", image, err)
	}
	return Built, nil
}

// pullRelease pulls remote, checks it was built from the recipe this
// berth expects, and tags it as image.
func (e *Ensurer) pullRelease(ctx context.Context, remote, image string, r versions.Release, out io.Writer) error {
	if err := e.pull(ctx, remote, out); err != nil {
		return err
	}
	labels, ok, err := e.Store.ImageLabels(ctx, remote)
	if err != nil || !ok {
		return fmt.Errorf("inspecting the pulled image: %v", err)
	}
	if want := e.expectedRecipe(r); want != "" && labels[nodeconfig.LabelNodeRecipe] != want {
		_ = e.Store.RemoveImage(context.WithoutCancel(ctx), remote)
		return fmt.Errorf("it was built from recipe %s, this berth builds %s", labels[nodeconfig.LabelNodeRecipe], want)
	}
	if labels[nodeconfig.LabelKubernetesVersion] != r.Kubernetes {
		return fmt.Errorf("it runs Kubernetes %q, not %s", labels[nodeconfig.LabelKubernetesVersion], r.Kubernetes)
	}
	return e.Store.TagImage(ctx, remote, image)
}

// pull pulls ref, giving up when the engine stays silent for
// pullStallTimeout (nothing reachable) — a large pull that progresses is
// never cut short.
func (e *Ensurer) pull(ctx context.Context, ref string, out io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &activityWriter{w: out, active: make(chan struct{}, 1)}
	go func() {
		t := time.NewTimer(pullStallTimeout)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.active:
				t.Reset(pullStallTimeout)
			case <-t.C:
				cancel(fmt.Errorf("no answer from the registry for %s", pullStallTimeout))
				return
			}
		}
	}()
	err := e.Store.PullImage(ctx, ref, w)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// activityWriter passes writes through and signals each one.
type activityWriter struct {
	mu     sync.Mutex
	w      io.Writer
	active chan struct{}
}

func (a *activityWriter) Write(p []byte) (int, error) {
	select {
	case a.active <- struct{}{}:
	default:
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w.Write(p)
}

// Fd is the wrapped writer's file descriptor, so a terminal still gets
// progress bars.
func (a *activityWriter) Fd() uintptr {
	if f, ok := a.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// expectedRecipe is the recipe this berth would build for r, or "" when
// it cannot tell (no source tree: a released binary trusts the release
// repository's image of its versions).
func (e *Ensurer) expectedRecipe(r versions.Release) string {
	src := e.Build.SourceDir
	if src == "" {
		var err error
		if src, err = FindSourceDir(); err != nil {
			return ""
		}
	}
	recipe, err := Recipe(src, r)
	if err != nil {
		return ""
	}
	return recipe
}
