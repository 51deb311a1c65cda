package commands

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/progress"
)

func newStopCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "stop", Short: "Stop a cluster, keeping its state"}
	var name string
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Stop every node of a cluster (start it again with `berth start cluster`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveCluster(cmd.Context(), g, cmd, &name); err != nil {
				return err
			}
			p, err := g.Provider(cmd.Context())
			if err != nil {
				return err
			}
			return progress.Run(g.Status(), "stopping cluster "+name, func() error {
				return cluster.Stop(cmd.Context(), p, name)
			})
		},
	}
	addNameFlag(c, &name)
	cmd.AddCommand(c)
	return cmd
}

func newStartCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "start", Short: "Start a stopped cluster"}
	var name string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Start a stopped cluster and wait until its nodes are Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveCluster(cmd.Context(), g, cmd, &name); err != nil {
				return err
			}
			p, err := g.Provider(cmd.Context())
			if err != nil {
				return err
			}
			return progress.Run(g.Status(), "starting cluster "+name, func() error {
				return cluster.Start(cmd.Context(), p, name, wait)
			})
		},
	}
	addNameFlag(c, &name)
	c.Flags().DurationVar(&wait, "wait", 3*time.Minute, "wait up to this long for every node to be Ready (0: do not wait)")
	cmd.AddCommand(c)
	return cmd
}
