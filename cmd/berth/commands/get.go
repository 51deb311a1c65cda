package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/create"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

func newGetCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "get", Short: "Show clusters, nodes, kubeconfigs and the local registry"}
	var output string

	clusters := &cobra.Command{
		Use:   "clusters",
		Short: "List berth clusters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.Provider(cmd.Context())
			if err != nil {
				return err
			}
			sums, err := cluster.Summaries(cmd.Context(), p)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				// A list of names, as scripts have read it since the
				// first release.
				names := []string{}
				for _, s := range sums {
					names = append(names, s.Name)
				}
				return writeJSON(g.Out, names)
			case "", "wide":
			default:
				return fmt.Errorf("unknown output format %q: use json or wide", output)
			}
			if len(sums) == 0 && !g.Quiet {
				fmt.Fprintln(g.ErrOut, "No clusters. Create one with: berth create cluster")
			}
			if output == "wide" {
				tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tNODES\tRUNNING\tVERSION\tSTATUS")
				for _, s := range sums {
					v := s.KubernetesVersion
					if v == "" {
						v = "-"
					}
					status := "complete"
					if s.Incomplete {
						status = cluster.IncompleteStatus(s.Name)
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Name, s.Nodes, s.Running, v, status)
				}
				return tw.Flush()
			}
			// stdout stays one name a line (scripts read it); a half-made
			// cluster is also named on stderr, with what to do.
			for _, s := range sums {
				fmt.Fprintln(g.Out, s.Name)
				if s.Incomplete && !g.Quiet {
					fmt.Fprintf(g.ErrOut, "cluster %s is %s\n", s.Name, cluster.IncompleteStatus(s.Name))
				}
			}
			return nil
		},
	}
	clusters.Flags().StringVarP(&output, "output", "o", "", "output format: json, or wide (nodes and Kubernetes version)")

	var name string
	nodes := &cobra.Command{
		Use:   "nodes",
		Short: "List a cluster's nodes: role, status, version, IP and container state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveCluster(cmd.Context(), g, cmd, &name); err != nil {
				return err
			}
			rows, err := nodeRows(cmd.Context(), g, name)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				return writeJSON(g.Out, rows)
			case "yaml":
				data, err := yaml.Marshal(rows)
				if err != nil {
					return err
				}
				_, err = g.Out.Write(data)
				return err
			case "", "wide":
				return printNodes(g.Out, rows, output == "wide")
			default:
				return fmt.Errorf("unknown output format %q: use json, yaml or wide", output)
			}
		},
	}
	addNameFlag(nodes, &name)
	nodes.Flags().StringVarP(&output, "output", "o", "", "output format: json, yaml or wide")

	var internal bool
	kc := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print a cluster's admin kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveCluster(cmd.Context(), g, cmd, &name); err != nil {
				return err
			}
			p, err := g.Provider(cmd.Context())
			if err != nil {
				return err
			}
			cfg, err := cluster.Kubeconfig(cmd.Context(), p, name)
			if err != nil {
				return err
			}
			data, err := kubeconfig.Encode(cfg)
			if err != nil {
				return err
			}
			_, err = g.Out.Write(data)
			return err
		},
	}
	addNameFlag(kc, &name)
	kc.Flags().BoolVar(&internal, "internal", false, "reserved: address the API server by its node IP")
	_ = kc.Flags().MarkHidden("internal")

	cmd.AddCommand(clusters, nodes, kc, newGetRegistryCommand(g))
	return cmd
}

// NodeRow is one line of `berth get nodes`.
type NodeRow struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Status    string `json:"status"`
	Version   string `json:"version"`
	IP        string `json:"ip"`
	Container string `json:"container"`
	// SRIOV lists the node's SR-IOV VFs and the pods using them.
	SRIOV []cluster.VFUse `json:"sriov,omitempty"`
}

func nodeRows(ctx context.Context, g *Globals, name string) ([]NodeRow, error) {
	p, err := g.Provider(ctx)
	if err != nil {
		return nil, err
	}
	containers, err := cluster.Nodes(ctx, p, name)
	if err != nil {
		return nil, err
	}
	byName := map[string]*corev1.Node{}
	client, err := cluster.Client(ctx, p, name)
	if err == nil {
		if list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
			for i := range list.Items {
				byName[list.Items[i].Name] = &list.Items[i]
			}
		}
	} else {
		client = nil
	}
	vfs := cluster.VFUsage(ctx, p, client, containers)
	var rows []NodeRow
	for _, c := range containers {
		row := NodeRow{Name: c.Name, Role: c.Role, IP: c.IP, Container: c.State, Status: "Unknown", Version: "-", SRIOV: vfs[c.Name]}
		if v := c.Labels[nodeconfig.LabelKubernetesVersion]; v != "" {
			row.Version = v
		}
		if n := byName[c.Name]; n != nil {
			row.Status = "NotReady"
			if create.NodeReady(n) {
				row.Status = "Ready"
			}
			if n.Spec.Unschedulable {
				row.Status += ",SchedulingDisabled"
			}
			row.Version = n.Status.NodeInfo.KubeletVersion
		} else if c.State == "running" {
			row.Status = "NotRegistered"
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func printNodes(w io.Writer, rows []NodeRow, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	header := "NAME\tROLE\tSTATUS\tVERSION\tIP\tCONTAINER"
	if wide {
		header += "\tSR-IOV VFS"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		cols := []string{r.Name, r.Role, r.Status, r.Version, r.IP, r.Container}
		if wide {
			cols = append(cols, vfSummary(r.SRIOV))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// vfSummary is the SR-IOV column: PF/PCI (mode) → pod, per VF.
func vfSummary(vfs []cluster.VFUse) string {
	if len(vfs) == 0 {
		return "-"
	}
	var parts []string
	for _, v := range vfs {
		use := "free"
		if v.Pod != "" {
			use = v.Pod
		}
		parts = append(parts, fmt.Sprintf("%s/%s(%s)→%s", v.PF, v.PCIAddress, v.Mode, use))
	}
	return strings.Join(parts, " ")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
