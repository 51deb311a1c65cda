package drain

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	kubectldrain "k8s.io/kubectl/pkg/cmd/drain"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	kdrain "k8s.io/kubectl/pkg/drain"
	"k8s.io/kubectl/pkg/util/completion"

	"github.com/berth-dev/berth/kubectl-like/prompt"
	"github.com/berth-dev/berth/kubectl-like/upstream"
)

// Options holds everything `berth drain` needs.
type Options struct {
	Node string
	Policy
	PodSelector        string
	GracePeriodSeconds int
	Timeout            time.Duration
	DisableEviction    bool
	DryRun             cmdutil.DryRunStrategy
	// Yes skips the confirmation asked at a terminal.
	Yes bool
	// explicit is true when the node was named on the command line.
	explicit bool
	// Prompt asks a person: the node picker and the confirmation. Without
	// a terminal it never waits for input.
	Prompt prompt.Prompter

	// RetryInterval and StatusInterval tune the Evictor.
	RetryInterval  time.Duration
	StatusInterval time.Duration

	Client kubernetes.Interface
	genericiooptions.IOStreams
}

// NewOptions returns Options with berth's defaults. p asks a person; nil
// means nobody is at a terminal.
func NewOptions(streams genericiooptions.IOStreams, p prompt.Prompter) *Options {
	return &Options{
		GracePeriodSeconds: -1,
		RetryInterval:      5 * time.Second,
		StatusInterval:     30 * time.Second,
		IOStreams:          streams,
		Prompt:             prompt.OrNoTerminal(p, streams.ErrOut),
	}
}

// NewCmdDrain returns the drain command; p picks the node when none is
// named and asks before draining (nil: nobody is at a terminal).
func NewCmdDrain(f cmdutil.Factory, streams genericiooptions.IOStreams, p prompt.Prompter) *cobra.Command {
	o := NewOptions(streams, p)
	cmd := &cobra.Command{
		Use:   "drain [NODE]",
		Short: "Cordon a node and evict its pods, honouring PodDisruptionBudgets",
		Long: `Cordon a node, then evict its pods through the Eviction API so that
PodDisruptionBudgets are honoured.

Evictions the API server refuses (a PodDisruptionBudget would be violated) are
retried; meanwhile the command prints which pods are blocked and by which
PodDisruptionBudget. Pods are refused, and the drain fails before evicting
anything, when they are managed by a DaemonSet (use --ignore-daemonsets to
leave them), use emptyDir volumes (--delete-emptydir-data) or have no
controller (--force); the error names every flag a rerun needs. Mirror pods
of static pods are always left alone. Which pods go is decided by kubectl's
own drain rules.

If --timeout passes (or the command is interrupted) first, the node stays
cordoned and the command fails, listing the pods still on the node.

Without NODE, a cluster's only node is used; with several, you pick one at a
terminal. At a terminal the drain shows the pods it will evict and the
PodDisruptionBudgets that will block it, and asks first (--yes skips the
question). Without a terminal nothing is asked, and a node that was not
named is only drained with --yes.`,
		Example: `  # Drain node berth-worker, leaving DaemonSet pods, for at most 5 minutes
  berth drain berth-worker --ignore-daemonsets --timeout=5m

  # Show what a drain would evict without changing anything
  berth drain berth-worker --ignore-daemonsets --dry-run=client`,
		Args:              cobra.MaximumNArgs(1),
		SilenceUsage:      true,
		ValidArgsFunction: completion.ResourceNameCompletionFunc(f, "node"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			ok, err := o.Confirm(cmd.Context())
			if err != nil || !ok {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.Force, "force", false, "Also delete pods no controller will recreate (pods without a controller, pods of a deleted DaemonSet).")
	fl.BoolVar(&o.IgnoreDaemonSets, "ignore-daemonsets", false, "Leave DaemonSet-managed pods on the node instead of refusing to drain it.")
	fl.BoolVar(&o.DeleteEmptyDirData, "delete-emptydir-data", false, "Evict pods using emptyDir volumes; their emptyDir data is lost.")
	fl.IntVar(&o.GracePeriodSeconds, "grace-period", -1, "Seconds each pod gets to terminate; negative uses the pod's own terminationGracePeriodSeconds.")
	fl.DurationVar(&o.Timeout, "timeout", 0, "Give up after this long (0: wait until done or interrupted). The node stays cordoned.")
	fl.StringVar(&o.PodSelector, "pod-selector", "", "Only consider pods matching this label selector.")
	fl.BoolVar(&o.DisableEviction, "disable-eviction", false, "Delete pods directly instead of evicting them; this bypasses PodDisruptionBudgets.")
	fl.BoolVarP(&o.Yes, "yes", "y", false, "Do not ask for confirmation.")
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Complete fills the options from the command line and the factory.
func (o *Options) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("at most one NODE may be given, got %d arguments", len(args))
	}
	var err error
	if o.DryRun, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if o.Client == nil {
		if o.Client, err = f.KubernetesClientSet(); err != nil {
			return fmt.Errorf("creating client: %w", err)
		}
	}
	if len(args) == 1 {
		o.Node, o.explicit = args[0], true
		return nil
	}
	o.Node, err = PickNode(cmd.Context(), o.Client, o.Prompt, "berth drain NODE")
	return err
}

// PickNode chooses a node of the cluster when none was named: the only
// one, or the one a person picks at a terminal. usage is how to name one.
func PickNode(ctx context.Context, client kubernetes.Interface, chooser prompt.Chooser, usage string) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing nodes to pick one: %w", err)
	}
	var names []string
	for _, n := range list.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return chooser.Choose(ctx, prompt.Choice{What: "node", Candidates: names, Hint: "name it: " + usage})
}

// Confirm shows what the drain will do and asks, at a terminal. Without
// one it asks nothing: a node that was named (or --yes) is drained, one
// that was only picked by default is not. It reports whether to go on.
func (o *Options) Confirm(ctx context.Context) (bool, error) {
	if o.Yes || o.DryRun != cmdutil.DryRunNone {
		return true, nil
	}
	if o.Prompt == nil || !o.Prompt.CanAsk() {
		if !o.explicit {
			return false, fmt.Errorf("not draining node %q without confirmation: there is no terminal to ask at; name it (berth drain %s) or pass --yes", o.Node, o.Node)
		}
		return true, nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	details, err := o.describe(ctx)
	if err != nil {
		return false, err
	}
	ok, err := o.Prompt.Confirm(ctx, fmt.Sprintf("Drain node %s?", o.Node), details)
	if err != nil {
		return false, err
	}
	if !ok {
		fmt.Fprintf(o.ErrOut, "Node %s left as it was.\n", o.Node)
	}
	return ok, nil
}

// describe lists what the drain will do: the pods it evicts, the
// PodDisruptionBudgets that will hold it up, and what it refuses.
func (o *Options) describe(ctx context.Context) ([]string, error) {
	plan, err := BuildPlan(ctx, o.Client, o.Node, o.PodSelector, o.Policy)
	if err != nil {
		return nil, err
	}
	lines := []string{fmt.Sprintf("node %s will be cordoned: no new pods are scheduled on it", o.Node)}
	pods := plan.Pods
	verb := "evicted"
	if o.DisableEviction {
		verb = "deleted (PodDisruptionBudgets bypassed)"
	}
	if len(pods) == 0 {
		lines = append(lines, "no pods to evict")
	} else {
		lines = append(lines, fmt.Sprintf("%d pod(s) will be %s:", len(pods), verb))
		const shown = 12
		for i, p := range pods {
			if i == shown {
				lines = append(lines, fmt.Sprintf("  ... and %d more", len(pods)-shown))
				break
			}
			lines = append(lines, "  "+p.Namespace+"/"+p.Name)
		}
	}
	if !o.DisableEviction && len(pods) > 0 {
		pdbs, err := o.Client.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing PodDisruptionBudgets: %w", err)
		}
		blocking := map[string]string{}
		var order []string
		for i := range pods {
			for _, pdb := range MatchingPDBs(&pods[i], pdbs.Items) {
				if pdb.Status.DisruptionsAllowed > 0 {
					continue
				}
				key := pdb.Namespace + "/" + pdb.Name
				if _, ok := blocking[key]; !ok {
					order = append(order, key)
					blocking[key] = DescribePDB(&pdb)
				}
			}
		}
		for _, k := range order {
			lines = append(lines, "blocked until it allows a disruption: "+blocking[k])
		}
	}
	lines = append(lines, plan.Warnings...)
	if err := plan.RefusalError(); err != nil {
		lines = append(lines, "the drain will fail: "+err.Error())
	}
	return lines, nil
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.Node == "" {
		return errors.New("a NODE name is required")
	}
	if o.Timeout < 0 {
		return fmt.Errorf("--timeout must not be negative, got %v", o.Timeout)
	}
	// Checked here, before the node is cordoned.
	if _, err := labels.Parse(o.PodSelector); err != nil {
		return fmt.Errorf("parsing --pod-selector %q: %w", o.PodSelector, err)
	}
	return nil
}

func (o *Options) dryRunSuffix() string {
	switch o.DryRun {
	case cmdutil.DryRunClient:
		return " (dry run)"
	case cmdutil.DryRunServer:
		return " (server dry run)"
	}
	return ""
}

// Run cordons the node and removes its pods.
func (o *Options) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}

	node, err := o.Client.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("getting node %q: %w", o.Node, err)
	}
	suffix := o.dryRunSuffix()
	switch {
	case o.DryRun == cmdutil.DryRunClient || node.Spec.Unschedulable:
		state := "cordoned"
		if node.Spec.Unschedulable {
			state = "already cordoned"
		}
		fmt.Fprintf(o.Out, "node/%s %s%s\n", o.Node, state, suffix)
	case o.DryRun == cmdutil.DryRunServer:
		// RunCordonOrUncordon always writes for real; send the same
		// change as a server-side dry run instead.
		c := kdrain.NewCordonHelper(node)
		c.UpdateIfRequired(true)
		if err, patchErr := c.PatchOrReplaceWithContext(ctx, o.Client, true); err != nil {
			return fmt.Errorf("cordoning node %q%s: %w", o.Node, suffix, errors.Join(err, patchErr))
		}
		fmt.Fprintf(o.Out, "node/%s cordoned%s\n", o.Node, suffix)
	default:
		if err := kdrain.RunCordonOrUncordon(&kdrain.Helper{Ctx: ctx, Client: o.Client}, node, true); err != nil {
			return fmt.Errorf("cordoning node %q: %w", o.Node, err)
		}
		fmt.Fprintf(o.Out, "node/%s cordoned\n", o.Node)
	}

	// Cordoned first, so that no pod is scheduled on the node while its
	// pods are judged; a refused drain leaves it cordoned and evicts
	// nothing.
	plan, err := BuildPlan(ctx, o.Client, o.Node, o.PodSelector, o.Policy)
	if err != nil {
		return o.stillCordoned(err)
	}
	for _, w := range plan.Warnings {
		fmt.Fprintf(o.ErrOut, "Warning: %s\n", w)
	}
	if err := plan.RefusalError(); err != nil {
		return o.stillCordoned(err)
	}

	pods := plan.Pods
	if o.DryRun == cmdutil.DryRunClient {
		verb := "evicting"
		if o.DisableEviction {
			verb = "deleting"
		}
		for _, p := range pods {
			fmt.Fprintf(o.Out, "%s pod %s/%s%s\n", verb, p.Namespace, p.Name, suffix)
		}
		fmt.Fprintf(o.Out, "node/%s drained%s\n", o.Node, suffix)
		return nil
	}

	ev := &Evictor{
		Client:             o.Client,
		GracePeriodSeconds: o.GracePeriodSeconds,
		DisableEviction:    o.DisableEviction,
		ServerDryRun:       o.DryRun == cmdutil.DryRunServer,
		RetryInterval:      o.RetryInterval,
		StatusInterval:     o.StatusInterval,
		Out:                o.Out,
		ErrOut:             o.ErrOut,
	}
	if err := ev.Run(ctx, o.Node, pods); err != nil {
		var inc *IncompleteError
		if errors.As(err, &inc) {
			inc.Timeout = o.Timeout
			return inc
		}
		return o.stillCordoned(fmt.Errorf("draining node %q: %w", o.Node, err))
	}
	fmt.Fprintf(o.Out, "node/%s drained%s\n", o.Node, suffix)
	return nil
}

func (o *Options) stillCordoned(err error) error {
	if o.DryRun != cmdutil.DryRunNone {
		return err
	}
	return fmt.Errorf("%w\nnode %q stays cordoned (undo with `berth uncordon %s`)", err, o.Node, o.Node)
}

// NewCmdCordon returns kubectl's cordon command (mark a node
// unschedulable); c picks the node when none is named (nil: nobody is at a
// terminal).
func NewCmdCordon(f cmdutil.Factory, streams genericiooptions.IOStreams, c prompt.Chooser) *cobra.Command {
	cmd := kubectldrain.NewCmdCordon(f, streams)
	cmd.SilenceUsage = true
	return withNodePicker(upstream.Rebrand(upstream.Wrap(cmd), "berth"), f, streams, c)
}

// NewCmdUncordon returns kubectl's uncordon command (mark a node
// schedulable); c picks the node when none is named (nil: nobody is at a
// terminal).
func NewCmdUncordon(f cmdutil.Factory, streams genericiooptions.IOStreams, c prompt.Chooser) *cobra.Command {
	cmd := kubectldrain.NewCmdUncordon(f, streams)
	cmd.SilenceUsage = true
	return withNodePicker(upstream.Rebrand(upstream.Wrap(cmd), "berth"), f, streams, c)
}

// withNodePicker lets cmd (cordon, uncordon) run without NODE: without
// --selector either, the cluster's only node is used, or a person picks
// one at a terminal.
func withNodePicker(cmd *cobra.Command, f cmdutil.Factory, streams genericiooptions.IOStreams, chooser prompt.Chooser) *cobra.Command {
	if chooser == nil {
		chooser = prompt.NoTerminal{Notes: streams.ErrOut}
	}
	run := cmd.RunE
	cmd.Use = strings.Replace(cmd.Use, " NODE", " [NODE]", 1)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if sel := c.Flags().Lookup("selector"); len(args) == 0 && (sel == nil || !sel.Changed) {
			client, err := f.KubernetesClientSet()
			if err != nil {
				return fmt.Errorf("creating client: %w", err)
			}
			node, err := PickNode(c.Context(), client, chooser, "berth "+c.Name()+" NODE")
			if err != nil {
				return err
			}
			args = []string{node}
		}
		return run(c, args)
	}
	return cmd
}
