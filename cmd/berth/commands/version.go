package commands

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/nodeimage/versions"
)

func newVersionCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print berth's version and the Kubernetes version it runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(g.Out, "berth %s (Kubernetes %s, containerd %s, %s/%s)\n", Version, versions.Kubernetes, versions.Containerd, runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
