package commands

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage"
	"github.com/berth-dev/berth/nodeimage/versions"
)

func newBuildCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "build", Short: "Build images"}
	var opts nodeimage.Options
	var version, push string
	node := &cobra.Command{
		Use:   "node-image",
		Short: "Build the node image from source",
		Long: `Build the node image: a minimal Debian root filesystem (debootstrap, from
the host's apt mirror) plus berth-node, containerd, runc, the CNI plugins and
CoreDNS, all compiled here at pinned versions. Nothing is pulled from a
registry. An image whose recipe is unchanged is not rebuilt (--force does).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			release, err := versions.Resolve(version)
			if err != nil {
				return fmt.Errorf("--kubernetes-version: %w", err)
			}
			opts.Release = release
			p, err := g.Provider(cmd.Context())
			if err != nil {
				return err
			}
			if err := buildImage(cmd.Context(), g, p, opts); err != nil {
				return err
			}
			if push == "" {
				return nil
			}
			image := opts.Image
			if image == "" {
				image = release.NodeImage()
			}
			return pushImage(cmd.Context(), g, p, image, push)
		},
	}
	f := node.Flags()
	f.StringVar(&push, "push", "", "after building, push the image to this reference (e.g. localhost:5001/berth/node:v1.37.2)")
	f.StringVar(&opts.Image, "image", "", "image reference to build (default "+versions.NodeImageRepo+":<version>)")
	f.StringVar(&version, "kubernetes-version", "", "Kubernetes version to build: a minor ("+versions.Default().Minor()+") or a pinned patch; supported: "+strings.Join(versions.Supported(), ", "))
	f.StringVar(&opts.DebianMirror, "debian-mirror", "", "Debian mirror URL (default: the host's apt sources)")
	f.StringVar(&opts.SourceDir, "source", "", "berth source tree (default: found from the working directory)")
	f.StringVar(&opts.CacheDir, "cache-dir", "", "cache for the root filesystem and binaries (default: the user cache directory)")
	f.BoolVar(&opts.Force, "force", false, "rebuild even if the recipe is unchanged")
	cmd.AddCommand(node, newBuildModuleCommand(g))
	return cmd
}

// pushImage tags image as ref, pushes it and prints the digest it got
// (what `create --image ref@digest` pins).
func pushImage(ctx context.Context, g *Globals, p provider.Provider, image, ref string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("--push %s: %w", ref, err)
	}
	if err := p.TagImage(ctx, image, ref); err != nil {
		return err
	}
	progress := g.ErrOut
	if g.Quiet {
		progress = io.Discard
	}
	if err := p.PushImage(ctx, ref, progress); err != nil {
		return fmt.Errorf("%w\n(is the registry running and reachable from the Docker engine? a local one: `berth create cluster --registry`)", err)
	}
	digest, err := p.ImageDigest(ctx, ref)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "%s@%s\n", named.Name(), digest)
	return nil
}

// buildOptions wires a build's log and stages to the CLI's display.
func buildOptions(g *Globals, opts nodeimage.Options) nodeimage.Options {
	opts.Log = g.Log()
	opts.Progress = g.Status()
	return opts
}

func buildImage(ctx context.Context, g *Globals, p provider.Provider, opts nodeimage.Options) error {
	opts = buildOptions(g, opts)
	started := time.Now()
	res, err := nodeimage.Build(ctx, p, opts)
	if err != nil {
		return fmt.Errorf("building node image: %w", err)
	}
	if res.Skipped {
		fmt.Fprintf(g.ErrOut, "Node image %s is up to date (recipe %s)\n", res.Image, res.Recipe)
		return nil
	}
	fmt.Fprintf(g.ErrOut, "Built node image %s (recipe %s) in %s\n", res.Image, res.Recipe, time.Since(started).Round(time.Second))
	return nil
}

// newBuildModuleCommand prints the resolved Kubernetes version and the
// build module (go.mod) that compiles the control module against it, for
// scripts that build that version's other programs (hack/conformance.sh).
func newBuildModuleCommand(g *Globals) *cobra.Command {
	var version, source string
	cmd := &cobra.Command{
		Use:    "control-module",
		Short:  "Print a Kubernetes version and the -modfile that builds the control module against it",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			release, err := versions.Resolve(version)
			if err != nil {
				return fmt.Errorf("--kubernetes-version: %w", err)
			}
			path, err := nodeimage.BuildModFile(cmd.Context(), nodeimage.Options{Release: release, SourceDir: source})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "%s %s\n", release.Kubernetes, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "kubernetes-version", "", "Kubernetes version (default: the default)")
	cmd.Flags().StringVar(&source, "source", "", "berth source tree (default: found from the working directory)")
	return cmd
}
