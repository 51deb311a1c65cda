// Package nodeimage builds berth's node image from source: a minimal
// Debian root filesystem (debootstrap, from the host's own apt mirror),
// the node binary and every runtime component compiled with the host's Go
// toolchain at the versions pinned in nodeimage/versions, and the images
// pods need (pause, CoreDNS) as OCI archives imported at boot. The result
// goes into the container engine as a single-layer image labelled with a
// hash of its recipe, so an unchanged recipe is never rebuilt.
package nodeimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// recipeVersion changes whenever the way the image is assembled changes
// in a way the hashed inputs do not show.
const recipeVersion = "8"

// Store is what the build needs from the container engine.
type Store interface {
	ImageLabels(ctx context.Context, ref string) (map[string]string, bool, error)
	// LoadImage loads the images of a docker-archive tar stream.
	LoadImage(ctx context.Context, archive io.Reader) error
}

// Options configure a build.
type Options struct {
	// Release is the Kubernetes version to build (default: the default
	// release).
	Release versions.Release
	// Image is the reference to build (default: the release's).
	Image string
	// DebianMirror overrides the mirror read from the host's apt sources.
	DebianMirror string
	// SourceDir is the berth source tree (holding control/); found from
	// the working directory when empty.
	SourceDir string
	// CacheDir keeps the root filesystem and compiled binaries between
	// builds (default: the user cache directory's berth folder).
	CacheDir string
	// Force rebuilds even when the image's recipe is unchanged.
	Force bool
	Log   *slog.Logger
	// Progress shows each stage as a step (nil: none). The CLI's status
	// displays satisfy it.
	Progress interface {
		Step(name string) (done func(err error))
	}
}

// Result tells what a build did.
type Result struct {
	Image   string
	Recipe  string
	Skipped bool
}

func (o *Options) defaults() error {
	if o.Release.Kubernetes == "" {
		o.Release = versions.Default()
	}
	if o.Image == "" {
		o.Image = o.Release.NodeImage()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.SourceDir == "" {
		dir, err := FindSourceDir()
		if err != nil {
			return err
		}
		o.SourceDir = dir
	}
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("finding a cache directory: %w", err)
		}
		o.CacheDir = filepath.Join(base, "berth")
	}
	return os.MkdirAll(o.CacheDir, 0o755)
}

// FindSourceDir walks up from the working directory to the berth source
// tree (the directory holding control/go.mod).
func FindSourceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "control", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("building the node image needs the berth source tree: run berth from a checkout, or pass --source DIR")
		}
		dir = parent
	}
}

// Recipe hashes every input of a release's image. Each release has its
// own, so building one version never invalidates another's image. The
// Debian mirror is not part of it: the same suite and packages from any
// mirror make the same node, so an image built elsewhere (a release)
// matches.
func Recipe(sourceDir string, r versions.Release) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\nsuite %s\npackages %s\npruned %s\n", recipeVersion, versions.DebianSuite, strings.Join(Packages, ","), strings.Join(pruned, ","))
	fmt.Fprintf(h, "left out %s; %s\n", strings.Join(leftOutPackages, ","), strings.Join(leftOutFiles, ","))
	fmt.Fprintf(h, "release %+v\n", r)
	for _, t := range toolsFor(r) {
		fmt.Fprintf(h, "tool %s %s %v %s\n", t.Name, t.Package, t.CGO, t.Tags)
	}
	fmt.Fprintf(h, "containerd %s\n", containerdRecipe())
	fmt.Fprintf(h, "cni %s\n", cniRecipe())
	fmt.Fprintf(h, "add-on programs %s\n", addonProgramsRecipe(r))
	src, err := sourceHash(sourceDir)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "source %s\n", src)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// sourceDirs are the parts of the tree that go into berth-node: the
// control module and the two dependency-free modules it shares with the
// CLI.
var sourceDirs = []string{"control", "nodeimage/nodeconfig", "nodeimage/versions"}

func sourceHash(root string) (string, error) {
	h := sha256.New()
	for _, rel := range sourceDirs {
		var files []string
		err := filepath.WalkDir(filepath.Join(root, rel), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// control/conformance only pins the upstream test suite; it
			// never goes into the image.
			if d.IsDir() && filepath.Base(path) == "conformance" {
				return filepath.SkipDir
			}
			// testdata (fuzz corpora, fixtures) never goes into the
			// image either, like the tests that read it.
			if d.IsDir() && filepath.Base(path) == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			files = append(files, path)
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("hashing sources under %s: %w", rel, err)
		}
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			r, _ := filepath.Rel(root, f)
			fmt.Fprintf(h, "%s %d\n", r, len(data))
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Build builds the node image unless one with the same recipe exists.
func Build(ctx context.Context, store Store, opts Options) (_ *Result, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	mirror := opts.DebianMirror
	if mirror == "" {
		m, err := MirrorFromAptSources("/")
		if err != nil {
			return nil, err
		}
		mirror = m
	}
	recipe, err := Recipe(opts.SourceDir, opts.Release)
	if err != nil {
		return nil, err
	}
	res := &Result{Image: opts.Image, Recipe: recipe}
	if !opts.Force {
		labels, ok, err := store.ImageLabels(ctx, opts.Image)
		if err != nil {
			return nil, err
		}
		if ok && labels[nodeconfig.LabelNodeRecipe] == recipe {
			res.Skipped = true
			return res, nil
		}
	}
	tools := toolsFor(opts.Release)
	// Debian base, berth-node, pod images, loading; the tools; containerd,
	// the CNI plugins, the add-on programs.
	total := 4 + len(tools) + 3
	stage := 0
	var stageMu sync.Mutex
	// step announces a stage; stages may overlap (the terminal display
	// shows every one in flight).
	step := func(name string) func(error) {
		stageMu.Lock()
		stage++
		n := stage
		stageMu.Unlock()
		label := fmt.Sprintf("[%d/%d] %s", n, total, name)
		opts.Log.Info("node image", "stage", fmt.Sprintf("%d/%d", n, total), "step", name)
		if opts.Progress == nil {
			return func(error) {}
		}
		return opts.Progress.Step(label)
	}
	var done func(error)
	// The stages after the parallel ones run one after the other: each
	// ends when the next begins; the last with the build.
	next := func(name string) {
		if done != nil {
			done(nil)
		}
		done = step(name)
	}
	defer func() {
		if done != nil {
			done(err)
		}
	}()
	started := time.Now()

	// The Debian base (downloads and unpacking: mostly waiting on the
	// network and the disk) and the compiles run at once, the compiles
	// two at a time: one `go` command alone leaves a core idle while it
	// links and between packages that wait on each other, and a fresh
	// machine spends most of a first build here. berth-node, the longest,
	// starts first.
	var (
		rootfs            string
		nodeBin, pauseBin string
		bins              = map[string]string{}
		mu                sync.Mutex
	)
	stages, sctx := errgroup.WithContext(ctx)
	run := func(name string, fn func(context.Context) error) func() error {
		end := step(name)
		return func() error {
			err := fn(sctx)
			end(err)
			return err
		}
	}
	stages.Go(run("Debian base filesystem (debootstrap "+versions.DebianSuite+")", func(ctx context.Context) (err error) {
		rootfs, err = baseRootfs(ctx, opts.CacheDir, mirror, opts.Log)
		return err
	}))
	compiles, cctx := errgroup.WithContext(sctx)
	compiles.SetLimit(2)
	compile := func(name string, fn func(context.Context) error) {
		compiles.Go(func() error {
			end := step(name)
			err := fn(cctx)
			end(err)
			return err
		})
	}
	stages.Go(func() error {
		compile("compiling berth-node (Kubernetes "+opts.Release.Kubernetes+", etcd "+opts.Release.Etcd+")", func(ctx context.Context) (err error) {
			nodeBin, pauseBin, err = buildControl(ctx, opts.SourceDir, opts.CacheDir, opts.Release)
			return err
		})
		compile("compiling the add-ons as one binary: CoreDNS "+opts.Release.CoreDNS+" (without "+strings.Join(corednsLeftOut, ", ")+"), MetalLB "+versions.MetalLB+", local-path-provisioner "+versions.LocalPath, func(ctx context.Context) error {
			path, err := buildAddonPrograms(ctx, opts.CacheDir, opts.Release)
			mu.Lock()
			bins[addonsBin] = path
			mu.Unlock()
			return err
		})
		compile("compiling containerd "+versions.Containerd+" (with ctr)", func(ctx context.Context) error {
			path, err := buildContainerd(ctx, opts.CacheDir)
			mu.Lock()
			bins[containerdBin] = path
			mu.Unlock()
			return err
		})
		compile("compiling the CNI plugins "+versions.CNIPlugins+" (one binary)", func(ctx context.Context) error {
			path, err := buildCNI(ctx, opts.CacheDir)
			mu.Lock()
			bins[cniBin] = path
			mu.Unlock()
			return err
		})
		for _, t := range tools {
			compile("compiling "+t.Name+" "+t.version(), func(ctx context.Context) error {
				path, err := installTool(ctx, opts.CacheDir, t)
				mu.Lock()
				bins[t.Name] = path
				mu.Unlock()
				return err
			})
		}
		return compiles.Wait()
	})
	if err := stages.Wait(); err != nil {
		return nil, err
	}
	next("assembling pod images (pause, storage helper, add-ons)")
	images, err := podImages(opts.CacheDir, rootfs, pauseBin, bins, opts.Release)
	if err != nil {
		return nil, err
	}
	next("loading " + opts.Image + " into Docker")
	layout := &layout{rootfs: rootfs, nodeBin: nodeBin, bins: bins, images: images}
	if err := layout.load(ctx, store, opts.CacheDir, nodeImage(opts.Image, recipe, opts.Release)); err != nil {
		return nil, err
	}
	used := []string{nodeBin, pauseBin}
	for _, p := range bins {
		used = append(used, p)
	}
	pruneBinaries(used, time.Now())
	opts.Log.Info("node image built", "image", opts.Image, "recipe", recipe, "took", time.Since(started).Round(time.Second))
	return res, nil
}

// errNotRoot explains why debootstrap cannot run.
var errNotRoot = errors.New("building the node image's root filesystem needs root (debootstrap): run `sudo berth build node-image` once")
