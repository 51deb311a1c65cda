package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
)

// DeleteOptions are the options of `berth delete cluster` and
// `berth delete clusters`.
type DeleteOptions struct {
	*Globals
	Name       string
	All        bool
	Yes        bool
	Kubeconfig string

	names []string
	// explicit is true when the clusters were named on the command line
	// (--name, arguments or --all): then a missing terminal is no reason
	// to refuse.
	explicit bool
}

func newDeleteCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "delete", Short: "Delete clusters, or the local registry"}
	o := &DeleteOptions{Globals: g}
	one := &cobra.Command{
		Use:   "cluster",
		Short: "Delete a cluster: its nodes, network, volumes and kubeconfig context",
		Long: `Delete a cluster: its nodes, network, volumes and kubeconfig context.

Without --name the cluster is "berth" if it exists (or if no cluster
exists), else the only cluster there is, else the one you pick. At a
terminal you are asked to confirm (--yes skips the question); without a
terminal nothing is asked, and a cluster that was not named with --name is
only deleted if it is "berth" or --yes is given.`,
		Example: `  berth delete cluster
  berth delete cluster --name dev --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.CompleteOne(cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addNameFlag(one, &o.Name)
	one.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file to remove the context from (default $KUBECONFIG or ~/.kube/config)")
	one.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	many := &cobra.Command{
		Use:   "clusters [NAME...]",
		Short: "Delete several clusters (--all for every berth cluster)",
		Long: `Delete the named clusters, or with --all every berth cluster. At a
terminal you are asked to confirm first (--yes skips the question).`,
		Example:           "  berth delete clusters dev test\n  berth delete clusters --all --yes",
		ValidArgsFunction: completeClusterNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.CompleteMany(cmd, args); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	many.Flags().BoolVarP(&o.All, "all", "A", false, "delete every berth cluster")
	many.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	many.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file to remove the contexts from")
	cmd.AddCommand(one, many, newDeleteRegistryCommand(g))
	return cmd
}

func (o *DeleteOptions) completeKubeconfig() error {
	if o.Kubeconfig != "" {
		return nil
	}
	path, err := kubeconfig.DefaultPath()
	if err != nil {
		return fmt.Errorf("finding the kubeconfig file: %w", err)
	}
	o.Kubeconfig = path
	return nil
}

// CompleteOne resolves the cluster of `delete cluster`.
func (o *DeleteOptions) CompleteOne(cmd *cobra.Command) error {
	explicit, err := ResolveCluster(cmd.Context(), o.Globals, cmd, &o.Name)
	if err != nil {
		return err
	}
	// "berth" is what `berth delete cluster` always meant: scripts rely on it.
	o.explicit = explicit || o.Name == config.DefaultName
	o.names = []string{o.Name}
	return o.completeKubeconfig()
}

// CompleteMany resolves the clusters of `delete clusters`.
func (o *DeleteOptions) CompleteMany(cmd *cobra.Command, args []string) error {
	switch {
	case o.All && len(args) > 0:
		return errors.New("name clusters or pass --all, not both")
	case o.All:
		p, err := o.Provider(cmd.Context())
		if err != nil {
			return err
		}
		if o.names, err = cluster.List(cmd.Context(), p); err != nil {
			return fmt.Errorf("listing clusters to delete: %w", err)
		}
		if len(o.names) == 0 && !o.Quiet {
			fmt.Fprintln(o.ErrOut, "There are no berth clusters; nothing to delete.")
		}
	case len(args) == 0:
		return errors.New("name the clusters to delete (see `berth get clusters`), or pass --all")
	default:
		o.names = args
	}
	o.explicit = true
	return o.completeKubeconfig()
}

// Run confirms (at a terminal) and deletes the clusters.
func (o *DeleteOptions) Run(ctx context.Context) error {
	if len(o.names) == 0 {
		return nil
	}
	p, err := o.Provider(ctx)
	if err != nil {
		return err
	}
	prompt := o.Prompt()
	if !o.Yes {
		switch {
		case prompt.Interactive:
			details, err := o.describe(ctx, p)
			if err != nil {
				return err
			}
			question := fmt.Sprintf("Delete cluster %s?", o.names[0])
			if len(o.names) > 1 {
				question = fmt.Sprintf("Delete these %d clusters?", len(o.names))
			}
			ok, err := prompt.Confirm(ctx, question, details)
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintln(o.ErrOut, "Nothing deleted.")
				return nil
			}
		case !o.explicit:
			return fmt.Errorf("not deleting cluster %q without confirmation: there is no terminal to ask at; name it (berth delete cluster --name %s) or pass --yes", o.names[0], o.names[0])
		}
	}
	status := o.Status()
	for _, n := range o.names {
		var found bool
		err := progress.Run(status, "deleting cluster "+n, func() error {
			var err error
			found, err = cluster.Delete(ctx, p, n, o.Kubeconfig)
			return err
		})
		if err != nil {
			return fmt.Errorf("%w (run the delete again; it removes whatever is left)", err)
		}
		if !found && !o.Quiet {
			fmt.Fprintf(o.ErrOut, "There was no cluster %q; its kubeconfig context is gone too.\n", n)
		}
	}
	return nil
}

// describe lists what the deletion removes, for the confirmation.
func (o *DeleteOptions) describe(ctx context.Context, p provider.Provider) ([]string, error) {
	theme := o.Prompt().Theme
	var lines []string
	for _, n := range o.names {
		nodes, err := p.ListNodes(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("listing the nodes of cluster %q: %w", n, err)
		}
		if len(nodes) == 0 {
			lines = append(lines, fmt.Sprintf("cluster %s: no nodes (only leftovers and its kubeconfig context)", theme.Bold.Render(n)))
			continue
		}
		var names []string
		for _, nd := range nodes {
			names = append(names, fmt.Sprintf("%s (%s, %s)", nd.Name, nd.Role, nd.State))
		}
		lines = append(lines, fmt.Sprintf("cluster %s, context %s: %d node(s): %s", theme.Bold.Render(n),
			kubeconfig.ContextName(n), len(nodes), strings.Join(names, ", ")))
	}
	return lines, nil
}
