package commands

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/provider/docker"
	"github.com/berth-dev/berth/cmd/berth/ui"
)

// Prompt returns how this command asks a person (pickers, confirmations).
func (g *Globals) Prompt() *ui.Prompt {
	return ui.NewPrompt(g.In, g.Out, g.ErrOut, g.NoColor)
}

// ResolveCluster decides which cluster a command acts on when --name was
// not given (a --name on the command line always wins and nothing is
// looked up):
//
//   - if a cluster named "berth" exists, or none exists, it is "berth"
//     (as before; commands then report that it does not exist);
//   - if exactly one other cluster exists, it is that one, and
//     "Using cluster X" goes to stderr;
//   - if several exist, a person at a terminal picks one; without a
//     terminal it is an error listing them.
//
// It returns whether the cluster was named explicitly (--name given).
func ResolveCluster(ctx context.Context, g *Globals, cmd *cobra.Command, name *string) (explicit bool, err error) {
	if f := cmd.Flags().Lookup("name"); f != nil && f.Changed {
		return true, nil
	}
	p, err := g.Provider(ctx)
	if err != nil {
		return false, err
	}
	names, err := cluster.List(ctx, p)
	if err != nil {
		return false, fmt.Errorf("listing clusters to find the one to use: %w", err)
	}
	if len(names) == 0 || slices.Contains(names, config.DefaultName) {
		*name = config.DefaultName
		return false, nil
	}
	picked, err := g.Prompt().Choose(ctx, ui.Choice{
		What:       "cluster",
		Candidates: names,
		Hint:       "name one with --name NAME",
		Quiet:      g.Quiet,
	})
	if err != nil {
		return false, err
	}
	*name = picked
	return false, nil
}

// resolveCluster is ResolveCluster for commands that do not care whether
// the cluster was named.
func resolveCluster(ctx context.Context, g *Globals, cmd *cobra.Command, name *string) error {
	_, err := ResolveCluster(ctx, g, cmd, name)
	return err
}

// completeClusterNames completes cluster names (for --name and
// positional cluster arguments).
func completeClusterNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := docker.New(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	names, err := cluster.List(ctx, p)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []string
	for _, n := range names {
		if !slices.Contains(args, n) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
