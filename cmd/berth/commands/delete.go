package commands

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/progress"
)

func newDeleteCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "delete", Short: "Delete clusters"}
	var name, kc string
	var all bool
	run := func(cmd *cobra.Command, names []string) error {
		ctx := cmd.Context()
		p, err := g.Provider(ctx)
		if err != nil {
			return err
		}
		if kc == "" {
			if kc, err = kubeconfig.DefaultPath(); err != nil {
				return err
			}
		}
		if all {
			if names, err = cluster.List(ctx, p); err != nil {
				return err
			}
		}
		status := g.Status()
		for _, n := range names {
			var found bool
			err := progress.Run(status, "deleting cluster "+n, func() error {
				var err error
				found, err = cluster.Delete(ctx, p, n, kc)
				return err
			})
			if err != nil {
				return err
			}
			if !found && !g.Quiet {
				fmt.Fprintf(g.ErrOut, "There was no cluster %q; its kubeconfig context is gone too.\n", n)
			}
		}
		return nil
	}
	one := &cobra.Command{
		Use:   "cluster",
		Short: "Delete a cluster: its nodes, network, volumes and kubeconfig context",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, []string{name})
		},
	}
	addNameFlag(one, &name)
	one.Flags().StringVar(&kc, "kubeconfig", "", "kubeconfig file to remove the context from (default $KUBECONFIG or ~/.kube/config)")
	many := &cobra.Command{
		Use:   "clusters [NAME...]",
		Short: "Delete several clusters (--all for every berth cluster)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if !all && len(args) == 0 {
				return fmt.Errorf("name the clusters to delete, or pass --all")
			}
			return run(cmd, args)
		},
	}
	many.Flags().BoolVarP(&all, "all", "A", false, "delete every berth cluster")
	many.Flags().StringVar(&kc, "kubeconfig", "", "kubeconfig file to remove the contexts from")
	cmd.AddCommand(one, many)
	return cmd
}
