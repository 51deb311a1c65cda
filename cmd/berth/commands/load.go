package commands

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/load"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
)

func newLoadCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "load", Short: "Load images into a cluster's nodes"}
	var name, nodeList string
	// targets resolves the cluster, connects to the engine and returns the
	// nodes to load into.
	targets := func(cmd *cobra.Command) ([]string, provider.Provider, error) {
		if err := resolveCluster(cmd.Context(), g, cmd, &name); err != nil {
			return nil, nil, err
		}
		p, err := g.Provider(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		nodes, err := cluster.Nodes(cmd.Context(), p, name)
		if err != nil {
			return nil, nil, err
		}
		all := cluster.KubernetesNodes(nodes)
		if nodeList == "" {
			return all, p, nil
		}
		var picked []string
		for _, want := range strings.Split(nodeList, ",") {
			found := false
			for _, n := range all {
				if n == want {
					found = true
				}
			}
			if !found {
				return nil, nil, fmt.Errorf("node %q is not part of cluster %q (its nodes: %s)", want, name, strings.Join(all, ", "))
			}
			picked = append(picked, want)
		}
		return picked, p, nil
	}
	image := &cobra.Command{
		Use:     "image IMAGE...",
		Short:   "Load images from the local Docker engine into every node's containerd",
		Example: "  berth load image myapp:dev\n  berth load image myapp:dev sidecar:1 --nodes berth-worker",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, images []string) error {
			nodes, p, err := targets(cmd)
			if err != nil {
				return err
			}
			started := time.Now()
			var loaded []string
			err = progress.Run(g.Status(), fmt.Sprintf("loading %s into %d node(s)", strings.Join(images, ", "), len(nodes)), func() error {
				var err error
				loaded, err = load.Images(cmd.Context(), p, nodes, images)
				return err
			})
			if err != nil || g.Quiet {
				return err
			}
			if len(loaded) == 0 {
				fmt.Fprintf(g.ErrOut, "Every node already has %s (same digest); nothing to load\n", strings.Join(images, ", "))
				return nil
			}
			fmt.Fprintf(g.ErrOut, "Loaded %d image(s) into %s in %s\n", len(images), strings.Join(loaded, ", "), time.Since(started).Round(10*time.Millisecond))
			if skipped := len(nodes) - len(loaded); skipped > 0 {
				fmt.Fprintf(g.ErrOut, "(%d node(s) already had them)\n", skipped)
			}
			return nil
		},
	}
	archive := &cobra.Command{
		Use:   "archive FILE.tar",
		Short: "Load an image archive (docker save or OCI layout) into every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nodes, p, err := targets(cmd)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("opening image archive: %w", err)
			}
			defer f.Close()
			return progress.Run(g.Status(), fmt.Sprintf("loading %s into %d node(s)", args[0], len(nodes)), func() error {
				return load.Archive(cmd.Context(), p, nodes, f)
			})
		},
	}
	for _, c := range []*cobra.Command{image, archive} {
		addNameFlag(c, &name)
		c.Flags().StringVar(&nodeList, "nodes", "", "comma-separated node names (default: every node)")
	}
	cmd.AddCommand(image, archive)
	return cmd
}
