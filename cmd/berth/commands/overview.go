package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cmd/berth/ui"
)

// overview is `berth` with no arguments at a terminal: the clusters that
// exist and the commands most likely wanted next.
func overview(ctx context.Context, g *Globals) error {
	theme := ui.NewTheme(ui.ColorEnabled(g.Out, g.NoColor))
	w := g.Out
	fmt.Fprintf(w, "%s %s\n\n", theme.Accent.Render("berth"), theme.Dim.Render("— local Kubernetes clusters in Docker ("+Version+")"))

	p, err := g.Provider(ctx)
	if err != nil {
		fmt.Fprintf(w, "%s %v\n\n", theme.Fail.Render(ui.SymFail), err)
		fmt.Fprintf(w, "Then:\n  %s\n  %s\n", theme.Bold.Render("berth create cluster"), theme.Bold.Render("berth --help"))
		return nil
	}
	nodes, err := p.ListNodes(ctx, "")
	if err != nil {
		return fmt.Errorf("listing clusters: %w", err)
	}
	byCluster := map[string][]provider.Node{}
	var names []string
	for _, n := range nodes {
		if n.Cluster == "" {
			continue
		}
		if _, ok := byCluster[n.Cluster]; !ok {
			names = append(names, n.Cluster)
		}
		byCluster[n.Cluster] = append(byCluster[n.Cluster], n)
	}
	if len(names) == 0 {
		fmt.Fprintf(w, "No clusters yet.\n\n%s\n", theme.Bold.Render("Next:"))
		fmt.Fprintf(w, "  %s   %s\n", theme.Bold.Render("berth create cluster"), theme.Dim.Render("# one node, about 15 s once the node image exists"))
		fmt.Fprintf(w, "  %s   %s\n", theme.Bold.Render("berth create cluster --name dev --workers 2"), theme.Dim.Render("# three nodes"))
		fmt.Fprintf(w, "  %s   %s\n", theme.Bold.Render("berth --help"), theme.Dim.Render("# every command"))
		return nil
	}
	slices.Sort(names)
	fmt.Fprintf(w, "%s\n", theme.Bold.Render("Clusters"))
	var tb strings.Builder
	tw := tabwriter.NewWriter(&tb, 0, 0, 2, ' ', 0)
	for _, name := range names {
		running := 0
		for _, n := range byCluster[name] {
			if n.State == "running" {
				running++
			}
		}
		fmt.Fprintf(tw, "%s\t%d/%d node(s) running\tcontext berth-%s\n", name, running, len(byCluster[name]), name)
	}
	_ = tw.Flush()
	for _, line := range strings.Split(strings.TrimRight(tb.String(), "\n"), "\n") {
		fmt.Fprintf(w, "  %s %s\n", theme.OK.Render(ui.SymPending), line)
	}

	// With several clusters and no "berth", commands offer a picker.
	flag := ""
	if len(names) == 1 && names[0] != config.DefaultName {
		flag = " --name " + names[0]
	}
	fmt.Fprintf(w, "\n%s\n", theme.Bold.Render("Next:"))
	next := [][2]string{
		{"berth status" + flag, "live view of nodes, pods and warnings"},
		{"berth get nodes" + flag, "nodes: role, status, version, IP"},
		{"berth kubectl -- get pods -A", "any kubectl command"},
		{"berth load image IMAGE" + flag, "a local Docker image into every node"},
		{"berth delete cluster" + flag, "remove it (asks first)"},
		{"berth --help", "every command"},
	}
	width := 0
	for _, n := range next {
		width = max(width, len(n[0]))
	}
	for _, n := range next {
		fmt.Fprintf(w, "  %s%s  %s\n", theme.Bold.Render(n[0]), strings.Repeat(" ", width-len(n[0])), theme.Dim.Render("# "+n[1]))
	}
	return nil
}
