package commands

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/registry"
	"github.com/berth-dev/berth/nodeimage"
)

// registryImageBuilder builds the local registry's image when it is
// missing or stale, showing the build as a step.
func registryImageBuilder(g *Globals, p provider.Provider) registry.BuildImage {
	return func(ctx context.Context) error {
		_, err := nodeimage.BuildRegistry(ctx, p, nodeimage.RegistryOptions{Log: g.Log(), Progress: g.Status()})
		return err
	}
}

// newGetRegistryCommand is `berth get registry`.
func newGetRegistryCommand(g *Globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Show the local registry: its address, state, clusters and size",
		Long: `Show the machine's local registry (berth create cluster --registry): the
address to push to from the host and to name in pod specs (localhost:<port>),
its address on the cluster networks, its state, the clusters it is connected
to, and (-o wide, json or yaml) the size of its data volume.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "", "wide", "json", "yaml":
			default:
				return fmt.Errorf("unknown output format %q: use json, yaml or wide", output)
			}
			p, err := g.Provider(cmd.Context())
			if err != nil {
				return err
			}
			info, err := registry.Get(cmd.Context(), p, output != "")
			if err != nil {
				return err
			}
			switch output {
			case "json":
				return writeJSON(g.Out, info)
			case "yaml":
				if info == nil {
					_, err := io.WriteString(g.Out, "null\n")
					return err
				}
				data, err := yaml.Marshal(info)
				if err != nil {
					return err
				}
				_, err = g.Out.Write(data)
				return err
			}
			if info == nil {
				if !g.Quiet {
					fmt.Fprintln(g.ErrOut, "No local registry. Create one with: berth create cluster --registry")
				}
				return nil
			}
			return printRegistry(g.Out, info, output == "wide")
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json, yaml or wide (with the data volume's size)")
	return cmd
}

func printRegistry(w io.Writer, info *registry.Info, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	header := []string{"NAME", "ADDRESS", "CLUSTER ADDRESS", "STATE", "CLUSTERS"}
	clusters := strings.Join(info.Clusters, ",")
	if clusters == "" {
		clusters = "-"
	}
	row := []string{info.Name, info.Address, info.InNetwork, info.State, clusters}
	if wide {
		header = append(header, "VOLUME", "SIZE")
		row = append(row, info.Volume, humanBytes(info.Size))
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	fmt.Fprintln(tw, strings.Join(row, "\t"))
	return tw.Flush()
}

// humanBytes renders a size as people read it ("-" when unknown).
func humanBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// DeleteRegistryOptions are the options of `berth delete registry`.
type DeleteRegistryOptions struct {
	*Globals
	Yes bool
}

// newDeleteRegistryCommand is `berth delete registry`.
func newDeleteRegistryCommand(g *Globals) *cobra.Command {
	o := &DeleteRegistryOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Delete the local registry, its data volume and every image in it",
		Long: `Delete the machine's local registry (berth create cluster --registry): its
container and its data volume, with every image pushed to it. Clusters that
use it keep running; their pulls from localhost:<port> fail until the next
create cluster --registry starts a new, empty registry (attached to them
again). At a terminal you are asked to confirm (--yes skips the question).`,
		Example: "  berth delete registry\n  berth delete registry --yes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// Run confirms (at a terminal) and deletes the registry. Without a
// terminal the command itself names what goes, as `delete cluster
// --name` does, so nothing is asked.
func (o *DeleteRegistryOptions) Run(ctx context.Context) error {
	p, err := o.Provider(ctx)
	if err != nil {
		return err
	}
	info, err := registry.Get(ctx, p, false)
	if err != nil {
		return err
	}
	prompt := o.Prompt()
	if info != nil && !o.Yes && prompt.Interactive {
		theme := prompt.Theme
		details := []string{fmt.Sprintf("registry %s at %s (%s), volume %s with every image pushed to it", theme.Bold.Render(info.Name), info.Address, info.State, info.Volume)}
		if len(info.Clusters) > 0 {
			details = append(details, fmt.Sprintf("used by cluster(s) %s: they keep running, but can no longer pull from %s", strings.Join(info.Clusters, ", "), info.Address))
		}
		ok, err := prompt.Confirm(ctx, "Delete the local registry and its images?", details)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(o.ErrOut, "Nothing deleted.")
			return nil
		}
	}
	var found bool
	err = progress.Run(o.Status(), "deleting the local registry "+registry.Name, func() error {
		var err error
		found, err = registry.Delete(ctx, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w (run the delete again; it removes whatever is left)", err)
	}
	if !found && !o.Quiet {
		fmt.Fprintln(o.ErrOut, "There was no local registry.")
	}
	return nil
}
