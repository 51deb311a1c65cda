package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/snapshot"
)

func newSnapshotCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save a cluster's state and restore it in seconds",
		Long: `Save a running cluster's state — etcd, every node's local-path volumes, the
images loaded into each node (by name and digest), its PKI and node
configuration — and bring the cluster back to it in seconds.

Snapshots live in $BERTH_SNAPSHOT_DIR, else $XDG_STATE_HOME/berth/snapshots
(~/.local/state/berth/snapshots). They hold the cluster's keys and Secrets:
files are readable by you alone.`,
	}
	cmd.AddCommand(newSnapshotSaveCommand(g), newSnapshotListCommand(g), newSnapshotDeleteCommand(g), newSnapshotRestoreCommand(g),
		newSnapshotExportCommand(g), newSnapshotImportCommand(g))
	return cmd
}

func newSnapshotExportCommand(g *Globals) *cobra.Command {
	var images bool
	cmd := &cobra.Command{
		Use:   "export NAME FILE.tar",
		Short: "Write a snapshot to a tar archive (- for stdout), for another machine",
		Long: `Write a snapshot to a tar archive (- for stdout), for berth snapshot import
on another machine.

With --images the archive also holds the images loaded into the
snapshot's nodes (berth load image), one docker-archive each, taken from
the host's Docker or, if Docker lacks one, from the containerd of a node
of the snapshot's cluster that has it: for a machine without them. import
loads them into that machine's Docker, where a restore finds them.`,
		Example: "  berth snapshot export golden golden.tar\n  berth snapshot export golden golden.tar --images",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, err := snapshot.DefaultStore()
			if err != nil {
				return err
			}
			var o snapshot.ExportOptions
			if images {
				p, err := g.Provider(ctx)
				if err != nil {
					return err
				}
				o.SaveImage = snapshot.SaveImageFrom(p)
			}
			if args[1] == "-" {
				return store.Export(ctx, args[0], g.Out, o)
			}
			// Written next to its destination and moved into place: no
			// half-written archive under the final name. The images wait
			// there too, one at a time.
			o.TempDir = filepath.Dir(args[1])
			tmp, err := os.CreateTemp(o.TempDir, ".berth-snapshot-")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := store.Export(ctx, args[0], tmp, o); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), args[1]); err != nil {
				return err
			}
			if !g.Quiet {
				what := ""
				if images {
					what = " with its images"
				}
				fmt.Fprintf(g.ErrOut, "Exported snapshot %s%s to %s (it holds the cluster's keys and Secrets: keep it private)\n", args[0], what, args[1])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&images, "images", false, "also write the images loaded into the snapshot's nodes (for a machine without them)")
	return cmd
}

func newSnapshotImportCommand(g *Globals) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "import FILE.tar",
		Short: "Add a snapshot from an archive written by snapshot export (- for stdin)",
		Long: `Add a snapshot from an archive written by berth snapshot export (- for
stdin). Images in the archive (export --images) are loaded into Docker.`,
		Example: "  berth snapshot import golden.tar\n  berth snapshot import golden.tar --as golden-2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, err := snapshot.DefaultStore()
			if err != nil {
				return err
			}
			var r io.Reader = g.In
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			// Docker is only needed by an archive with images.
			var p provider.Provider
			load := func(ctx context.Context, archive io.Reader) error {
				if p == nil {
					if p, err = g.Provider(ctx); err != nil {
						return err
					}
				}
				return p.LoadImage(ctx, archive)
			}
			res, err := store.Import(ctx, r, as, snapshot.ImportOptions{LoadImage: load})
			if err != nil {
				return fmt.Errorf("importing %s: %w", args[0], err)
			}
			if !g.Quiet {
				m := res.Manifest
				fmt.Fprintf(g.ErrOut, "Imported snapshot %s (cluster %s, Kubernetes %s, %d node(s))\n", m.Name, m.Cluster, m.KubernetesVersion, len(m.Nodes))
				for _, img := range res.Images {
					fmt.Fprintf(g.ErrOut, "Loaded image %s into Docker\n", img.Name)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "name to store the snapshot under (default: its own)")
	return cmd
}

// SnapshotSaveOptions are the options of `berth snapshot save`.
type SnapshotSaveOptions struct {
	*Globals
	Cluster  string
	Snapshot string
	Replace  bool
	Output   string
}

func newSnapshotSaveCommand(g *Globals) *cobra.Command {
	o := &SnapshotSaveOptions{Globals: g}
	cmd := &cobra.Command{
		Use:     "save NAME",
		Short:   "Save a snapshot of a running cluster",
		Example: "  berth snapshot save golden\n  berth snapshot save before-upgrade --name dev",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Snapshot = args[0]
			if err := o.Complete(cmd); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addNameFlag(cmd, &o.Cluster)
	cmd.Flags().BoolVar(&o.Replace, "replace", false, "replace a snapshot of the same name")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json (the snapshot's manifest)")
	return cmd
}

// Complete resolves the cluster.
func (o *SnapshotSaveOptions) Complete(cmd *cobra.Command) error {
	return resolveCluster(cmd.Context(), o.Globals, cmd, &o.Cluster)
}

// Validate checks the name and output format.
func (o *SnapshotSaveOptions) Validate() error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: use json", o.Output)
	}
	return snapshot.ValidateName(o.Snapshot)
}

// Run saves the snapshot.
func (o *SnapshotSaveOptions) Run(ctx context.Context) error {
	p, err := o.Provider(ctx)
	if err != nil {
		return err
	}
	store, err := snapshot.DefaultStore()
	if err != nil {
		return err
	}
	started := time.Now()
	var m *snapshot.Manifest
	if err := progress.Run(o.Status(), fmt.Sprintf("saving snapshot %s of cluster %s", o.Snapshot, o.Cluster), func() error {
		m, err = snapshot.Save(ctx, p, store, snapshot.SaveOptions{Cluster: o.Cluster, Name: o.Snapshot, Replace: o.Replace})
		return err
	}); err != nil {
		return err
	}
	if o.Output == "json" {
		return writeJSON(o.Out, m)
	}
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, "Saved snapshot %s of cluster %s (etcd %s, volumes %s) in %s\nRestore it with: berth snapshot restore %s\n",
			m.Name, m.Cluster, size(m.EtcdBytes), size(m.VolumesBytes), time.Since(started).Round(10*time.Millisecond), m.Name)
	}
	return nil
}

func newSnapshotListCommand(g *Globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List saved snapshots",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("unknown output format %q: use json", output)
			}
			store, err := snapshot.DefaultStore()
			if err != nil {
				return err
			}
			list, err := store.List()
			if err != nil {
				return err
			}
			if output == "json" {
				if list == nil {
					list = []snapshot.Manifest{}
				}
				return writeJSON(g.Out, list)
			}
			if len(list) == 0 {
				if !g.Quiet {
					fmt.Fprintln(g.ErrOut, "No snapshots. Save one with: berth snapshot save NAME")
				}
				return nil
			}
			tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCLUSTER\tVERSION\tNODES\tCREATED\tSIZE")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Cluster, m.KubernetesVersion, len(m.Nodes),
					m.Created.Local().Format(time.DateTime), size(m.EtcdBytes+m.VolumesBytes))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func newSnapshotDeleteCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete saved snapshots",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := snapshot.DefaultStore()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := store.Delete(name); err != nil {
					return err
				}
				if !g.Quiet {
					fmt.Fprintf(g.ErrOut, "Deleted snapshot %s\n", name)
				}
			}
			return nil
		},
	}
}

// SnapshotRestoreOptions are the options of `berth snapshot restore`.
type SnapshotRestoreOptions struct {
	*Globals
	Snapshot string
	Cluster  string
	Yes      bool
	Wait     time.Duration
	Output   string

	manifest *snapshot.Manifest
	store    snapshot.Store
}

func newSnapshotRestoreCommand(g *Globals) *cobra.Command {
	o := &SnapshotRestoreOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "restore NAME",
		Short: "Bring a running cluster back to a snapshot",
		Long: `Bring a running cluster back to a snapshot: etcd, every node's volumes and
the images loaded into the nodes. Objects created since the snapshot are
deleted (their pods stopped), objects deleted since come back.

The cluster is the one the snapshot was taken of, unless --name names
another with the same nodes, Kubernetes version and certificate authority.
At a terminal you are asked to confirm (--yes skips the question); without
one, --yes is required.

A safety snapshot is taken first: if the restore fails or is interrupted
(Ctrl-C), the cluster is put back as it was before.`,
		Example: "  berth snapshot restore golden --yes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Snapshot = args[0]
			if err := o.Complete(cmd); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Cluster, "name", "", "cluster to restore (default: the one the snapshot was taken of)")
	_ = cmd.RegisterFlagCompletionFunc("name", completeClusterNames)
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&o.Wait, "wait", time.Minute, "how long to wait for the API server and nodes after the restore")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json (what the restore did)")
	return cmd
}

// Complete reads the snapshot and picks the cluster.
func (o *SnapshotRestoreOptions) Complete(cmd *cobra.Command) error {
	var err error
	if o.store, err = snapshot.DefaultStore(); err != nil {
		return err
	}
	if o.manifest, err = o.store.Get(o.Snapshot); err != nil {
		return err
	}
	if o.Cluster == "" {
		o.Cluster = o.manifest.Cluster
	}
	return nil
}

// Validate checks the output format.
func (o *SnapshotRestoreOptions) Validate() error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: use json", o.Output)
	}
	return nil
}

// Run confirms and restores.
func (o *SnapshotRestoreOptions) Run(ctx context.Context) error {
	if !o.Yes {
		prompt := o.Prompt()
		if !prompt.Interactive {
			return fmt.Errorf("not restoring cluster %q without confirmation: its current state would be discarded, and there is no terminal to ask at; pass --yes", o.Cluster)
		}
		m := o.manifest
		ok, err := prompt.Confirm(ctx, fmt.Sprintf("Restore cluster %s to snapshot %s?", o.Cluster, m.Name), []string{
			fmt.Sprintf("snapshot %s: cluster %s, Kubernetes %s, %d node(s), taken %s", m.Name, m.Cluster, m.KubernetesVersion, len(m.Nodes), m.Created.Local().Format(time.DateTime)),
			"everything created or changed in the cluster since then is discarded",
		})
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(o.ErrOut, "Nothing restored.")
			return nil
		}
	}
	p, err := o.Provider(ctx)
	if err != nil {
		return err
	}
	r, err := snapshot.Restore(ctx, p, o.store, snapshot.RestoreOptions{Cluster: o.Cluster, Name: o.Snapshot, Wait: o.Wait, Status: o.Status()})
	if err != nil {
		if errors.Is(err, context.Canceled) && errors.Is(err, snapshot.ErrRolledBack) {
			return fmt.Errorf("interrupted; %w", snapshot.ErrRolledBack)
		}
		return err
	}
	if o.Output == "json" {
		return writeJSON(o.Out, r)
	}
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, "Restored cluster %s to snapshot %s in %s (etcd: %d keys written, %d deleted, %d unchanged, written in %s)\n",
			r.Cluster, r.Snapshot, r.Took.Round(10*time.Millisecond), r.Puts, r.Deletes, r.Unchanged, r.EtcdApply.Round(time.Millisecond))
		for node, imgs := range r.ImagesLoaded {
			fmt.Fprintf(o.ErrOut, "Loaded again into %s: %v\n", node, imgs)
		}
		for node, imgs := range r.ImagesMissing {
			fmt.Fprintf(o.ErrOut, "warning: %s had %v when the snapshot was taken; neither it nor Docker has them now (berth load image)\n", node, imgs)
		}
	}
	return nil
}

// size formats a byte count.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
