package commands

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// VersionInfo is `berth version -o json`: what scripts (hack/conformance.sh)
// read instead of repeating version numbers.
type VersionInfo struct {
	Berth      string             `json:"berth"`
	Default    string             `json:"defaultKubernetesVersion"`
	Kubernetes []versions.Release `json:"kubernetesVersions"`
	Containerd string             `json:"containerd"`
	Platform   string             `json:"platform"`
}

func newVersionCommand(g *Globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print berth's version and the Kubernetes versions it runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := VersionInfo{
				Berth:      Version,
				Default:    versions.Default().Kubernetes,
				Kubernetes: versions.Releases,
				Containerd: versions.Containerd,
				Platform:   runtime.GOOS + "/" + runtime.GOARCH,
			}
			switch output {
			case "json":
				return writeJSON(g.Out, info)
			case "":
			default:
				return fmt.Errorf("unknown output format %q: use json", output)
			}
			fmt.Fprintf(g.Out, "berth %s (%s, containerd %s)\n", info.Berth, info.Platform, info.Containerd)
			fmt.Fprintln(g.Out, "Kubernetes versions (create cluster --kubernetes-version):")
			for _, r := range versions.Releases {
				mark := ""
				if r == versions.Default() {
					mark = "  (default)"
				}
				fmt.Fprintf(g.Out, "  %s  etcd %s, CoreDNS %s, pause %s%s\n", r.Kubernetes, r.Etcd, r.CoreDNS, r.Pause, mark)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}
