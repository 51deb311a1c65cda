package commands

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/create"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/registry"
	"github.com/berth-dev/berth/cluster/snapshot"
	"github.com/berth-dev/berth/cluster/trace"
	"github.com/berth-dev/berth/nodeimage"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// CreateOptions are the options of `berth create cluster`.
type CreateOptions struct {
	*Globals
	Name       string
	ConfigFile string
	Image      string
	// KubernetesVersion overrides the file's kubernetesVersion.
	KubernetesVersion string
	Workers           int
	// ControlPlanes, when set, is the number of control-plane nodes.
	ControlPlanes int
	Wait          time.Duration
	Retain        bool
	Kubeconfig    string
	// Registry connects the cluster to the local registry (registry: {}).
	Registry bool
	// Trace, when set, is the file (- for standard output) the create's
	// timeline is written to: host steps, berth-node and component
	// milestones of every node.
	Trace string
	// FromSnapshot, when set, makes the cluster from that snapshot: its
	// layout, version, networking and CA, then its state restored
	// (snapshot.CreateFrom).
	FromSnapshot string

	cfg *config.Cluster
}

func newCreateCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "create", Short: "Create a cluster"}
	o := &CreateOptions{Globals: g}
	cluster := &cobra.Command{
		Use:   "cluster",
		Short: "Create a local Kubernetes cluster",
		Long: `Create a cluster of Docker containers running upstream Kubernetes
(` + strings.Join(versions.Supported(), ", ") + `; default ` + versions.Default().Kubernetes + `).

Without --config the cluster has one node that is both control plane and
worker. The first run builds the node image from source (several
minutes); later runs start in seconds. The kubeconfig context
berth-<name> is merged into $KUBECONFIG (or ~/.kube/config) and made current.`,
		Example: `  berth create cluster
  berth create cluster --name dev --workers 2
  berth create cluster --name old --kubernetes-version v1.35
  berth create cluster --config testdata/three-nodes.yaml
  berth create cluster --from-snapshot golden --name job1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(cmd); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cluster.Flags()
	addNameFlag(cluster, &o.Name)
	f.StringVar(&o.ConfigFile, "config", "", "cluster configuration file (berth.dev/v1alpha1 or kind's v1alpha4), - for stdin")
	f.StringVar(&o.Image, "image", "", "node image for every node (default "+versions.NodeImageRepo+":<version>, built when missing)")
	f.StringVar(&o.KubernetesVersion, "kubernetes-version", "", "Kubernetes version: a minor ("+versions.Default().Minor()+") or a pinned patch; supported: "+strings.Join(versions.Supported(), ", "))
	f.IntVar(&o.Workers, "workers", 0, "add this many worker nodes")
	f.IntVar(&o.ControlPlanes, "control-planes", 0, "number of control-plane nodes (3 gives an etcd quorum that survives losing one)")
	f.DurationVar(&o.Wait, "wait", 5*time.Minute, "wait up to this long for nodes Ready and DNS available (0: only for the API server)")
	f.BoolVar(&o.Retain, "retain", false, "keep the nodes when create fails, for debugging")
	f.BoolVar(&o.Registry, "registry", false, "use the local registry (started if needed; push to localhost:5001, pods pull localhost:5001/...); a port: registry: {port: N} in --config")
	f.StringVar(&o.Trace, "trace", "", "write the create's timeline (host steps, node boot, component milestones, pod starts) to this file, - for standard output")
	f.StringVar(&o.FromSnapshot, "from-snapshot", "", "make the cluster from a saved snapshot (berth snapshot save): its layout, Kubernetes version, networking and CA, then its state; the cluster it was taken of may still run (--name defaults to that cluster's name)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file to merge the context into (default $KUBECONFIG or ~/.kube/config)")
	cmd.AddCommand(cluster)
	return cmd
}

// Complete loads the configuration and applies flags over it.
func (o *CreateOptions) Complete(cmd *cobra.Command) error {
	if o.FromSnapshot != "" {
		return o.completeFromSnapshot(cmd)
	}
	cfg := &config.Cluster{}
	if o.ConfigFile != "" {
		var r io.Reader
		if o.ConfigFile == "-" {
			r = o.In
		} else {
			f, err := os.Open(o.ConfigFile)
			if err != nil {
				return fmt.Errorf("reading cluster configuration: %w", err)
			}
			defer f.Close()
			r = f
		}
		loaded, warnings, err := config.Load(r, o.ConfigFile)
		if err != nil {
			return err
		}
		for _, w := range warnings {
			fmt.Fprintf(o.ErrOut, "warning: %s\n", w)
		}
		cfg = loaded
	}
	if cmd.Flags().Changed("name") || cfg.Name == "" {
		cfg.Name = o.Name
	}
	if len(cfg.Nodes) == 0 {
		cfg.Nodes = []config.Node{{Role: nodeconfig.RoleControlPlane}}
	}
	if o.ControlPlanes > 0 {
		var nodes []config.Node
		for i := 0; i < o.ControlPlanes; i++ {
			nodes = append(nodes, config.Node{Role: nodeconfig.RoleControlPlane})
		}
		for _, n := range cfg.Nodes {
			if n.Role == nodeconfig.RoleWorker {
				nodes = append(nodes, n)
			}
		}
		cfg.Nodes = nodes
	}
	for i := 0; i < o.Workers; i++ {
		cfg.Nodes = append(cfg.Nodes, config.Node{Role: nodeconfig.RoleWorker})
	}
	if o.KubernetesVersion != "" {
		release, err := versions.Resolve(o.KubernetesVersion)
		if err != nil {
			return fmt.Errorf("--kubernetes-version: %w", err)
		}
		cfg.KubernetesVersion = release.Kubernetes
	}
	if o.Image != "" {
		for i := range cfg.Nodes {
			cfg.Nodes[i].Image = o.Image
		}
	}
	if o.Registry && cfg.Registry == nil {
		cfg.Registry = &config.RegistryConfig{}
	}
	cfg.SetDefaults()
	if o.Kubeconfig == "" {
		path, err := kubeconfig.DefaultPath()
		if err != nil {
			return err
		}
		o.Kubeconfig = path
	}
	o.cfg = cfg
	return nil
}

// completeFromSnapshot checks that no flag asks for something the
// snapshot decides (the layout, version and networking are the
// snapshot's).
func (o *CreateOptions) completeFromSnapshot(cmd *cobra.Command) error {
	for _, flag := range []string{"config", "kubernetes-version", "workers", "control-planes", "registry", "trace"} {
		if cmd.Flags().Changed(flag) {
			return fmt.Errorf("--%s cannot be used with --from-snapshot: the cluster gets the snapshot's configuration", flag)
		}
	}
	if !cmd.Flags().Changed("name") {
		o.Name = "" // the snapshot's cluster's name
	}
	if o.Kubeconfig == "" {
		path, err := kubeconfig.DefaultPath()
		if err != nil {
			return err
		}
		o.Kubeconfig = path
	}
	return nil
}

// Validate checks the options before anything is made.
func (o *CreateOptions) Validate() error {
	if o.FromSnapshot != "" {
		if err := snapshot.ValidateName(o.FromSnapshot); err != nil {
			return fmt.Errorf("--from-snapshot: %w", err)
		}
		if o.Name != "" {
			if err := config.ValidateName(o.Name); err != nil {
				return fmt.Errorf("%w (set it with --name)", err)
			}
		}
		return nil
	}
	if o.Workers < 0 || o.ControlPlanes < 0 {
		return fmt.Errorf("--workers and --control-planes must not be negative")
	}
	if err := config.ValidateName(o.cfg.Name); err != nil {
		return fmt.Errorf("%w (set it with --name)", err)
	}
	return o.cfg.Validate()
}

// Run creates the cluster.
func (o *CreateOptions) Run(ctx context.Context) error {
	p, err := o.Provider(ctx)
	if err != nil {
		return err
	}
	if o.FromSnapshot != "" {
		return o.runFromSnapshot(ctx, p)
	}
	theme := o.Theme()
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, "Creating cluster %s (%d node(s), Kubernetes %s)\n", theme.Bold.Render(o.cfg.Name), len(o.cfg.Nodes), o.cfg.KubernetesVersion)
	}
	status := o.Status()
	var rec *trace.Recorder
	if o.Trace != "" {
		rec = &trace.Recorder{Next: status}
		status = rec
	}
	started := time.Now()
	res, err := create.Create(ctx, p, create.Options{
		Config:         o.cfg,
		Wait:           o.Wait,
		Retain:         o.Retain,
		KubeconfigPath: o.Kubeconfig,
		Images:         imageEnsurer(o.Globals, p),
		RegistryImage:  registryImageBuilder(o.Globals, p),
		Log:            o.Log(),
		Status:         status,
	})
	if err != nil {
		return err
	}
	if rec != nil {
		if err := o.writeTrace(ctx, p, rec, started); err != nil {
			return err
		}
	}
	return o.printResult(res)
}

// runFromSnapshot creates the cluster from snapshot o.FromSnapshot.
func (o *CreateOptions) runFromSnapshot(ctx context.Context, p provider.Provider) error {
	store, err := snapshot.DefaultStore()
	if err != nil {
		return err
	}
	m, err := store.Get(o.FromSnapshot)
	if err != nil {
		return err
	}
	name := o.Name
	if name == "" {
		name = m.Cluster
	}
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, "Creating cluster %s from snapshot %s (%d node(s), Kubernetes %s)\n", o.Theme().Bold.Render(name), m.Name, len(m.Nodes), m.KubernetesVersion)
	}
	res, report, err := snapshot.CreateFrom(ctx, p, store, snapshot.CreateFromOptions{
		Snapshot: o.FromSnapshot,
		Name:     name,
		Image:    o.Image,
		Create: create.Options{
			Wait:           o.Wait,
			Retain:         o.Retain,
			KubeconfigPath: o.Kubeconfig,
			Images:         imageEnsurer(o.Globals, p),
			Log:            o.Log(),
			Status:         o.Status(),
		},
	})
	if err != nil {
		return err
	}
	o.cfg = &config.Cluster{Name: res.Name}
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, "Restored snapshot %s into %s (etcd: %d keys written, %d deleted, %d unchanged)\n", m.Name, res.Name, report.Puts, report.Deletes, report.Unchanged)
		for node, images := range report.ImagesMissing {
			fmt.Fprintf(o.ErrOut, "warning: %s had images Docker no longer has; load them again with berth load image: %s\n", node, strings.Join(images, ", "))
		}
	}
	return o.printResult(res)
}

// printResult tells where the new cluster is.
func (o *CreateOptions) printResult(res *create.Result) error {
	theme := o.Theme()
	if o.Quiet {
		fmt.Fprintln(o.Out, res.Context)
		return nil
	}
	fmt.Fprintf(o.ErrOut, "\n%s cluster %s is ready in %s: %d node(s), API %s, context %s\n",
		theme.OK.Render("✓"), theme.Bold.Render(res.Name), res.Took.Round(100*time.Millisecond),
		len(res.Nodes), res.Server, theme.Accent.Render(res.Context))
	next := "berth get nodes"
	if res.Name != config.DefaultName {
		next += " --name " + res.Name
	}
	fmt.Fprintf(o.ErrOut, "  next: %s    (or: kubectl --context %s get pods -A)\n", theme.Bold.Render(next), res.Context)
	if port := o.cfg.RegistryPort(); port > 0 {
		addr := registry.HostAddress(port)
		fmt.Fprintf(o.ErrOut, "  registry: docker push %s/app:dev, then image: %s/app:dev in a pod    (berth get registry)\n", addr, addr)
	}
	return nil
}

// writeTrace merges the recorded host steps with every node's boot log
// and component milestones and writes the timeline to o.Trace.
func (o *CreateOptions) writeTrace(ctx context.Context, p provider.Provider, rec *trace.Recorder, started time.Time) error {
	nodes, err := cluster.Nodes(ctx, p, o.cfg.Name)
	if err != nil {
		return fmt.Errorf("tracing the create: %w", err)
	}
	events, err := trace.Collect(ctx, p, nodes, started)
	if err != nil {
		return fmt.Errorf("tracing the create: %w", err)
	}
	events = append(events, rec.Events()...)
	if o.Trace == "-" {
		return trace.Write(o.Out, started, events)
	}
	var buf bytes.Buffer
	if err := trace.Write(&buf, started, events); err != nil {
		return err
	}
	if err := os.WriteFile(o.Trace, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the create's timeline: %w", err)
	}
	return nil
}

// imageEnsurer finds, or builds from source, the node images a create
// needs, reporting build stages on the status display.
func imageEnsurer(g *Globals, p provider.Provider) *nodeimage.Ensurer {
	return &nodeimage.Ensurer{Store: p, Build: buildOptions(g, nodeimage.Options{}), Out: g.ErrOut}
}
