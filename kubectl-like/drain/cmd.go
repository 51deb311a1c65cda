package drain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	kubectldrain "k8s.io/kubectl/pkg/cmd/drain"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	kdrain "k8s.io/kubectl/pkg/drain"

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

	// RetryInterval, PollInterval and StatusInterval tune the Evictor.
	RetryInterval  time.Duration
	PollInterval   time.Duration
	StatusInterval time.Duration

	Client kubernetes.Interface
	genericiooptions.IOStreams
}

// NewOptions returns Options with berth's defaults.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{
		GracePeriodSeconds: -1,
		RetryInterval:      5 * time.Second,
		PollInterval:       time.Second,
		StatusInterval:     30 * time.Second,
		IOStreams:          streams,
	}
}

// NewCmdDrain returns the drain command.
func NewCmdDrain(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewOptions(streams)
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Cordon a node and evict its pods, honouring PodDisruptionBudgets",
		Long: `Cordon a node, then evict its pods through the Eviction API so that
PodDisruptionBudgets are honoured.

Evictions the API server refuses (a PodDisruptionBudget would be violated) are
retried; meanwhile the command prints which pods are blocked and by which
PodDisruptionBudget. Pods are refused, and the drain fails before evicting
anything, when they are managed by a DaemonSet (use --ignore-daemonsets to
leave them), use emptyDir volumes (--delete-emptydir-data) or have no
controller (--force). Mirror pods of static pods are always left alone.

If --timeout passes (or the command is interrupted) first, the node stays
cordoned and the command fails, listing the pods still on the node.`,
		Example: `  # Drain node berth-worker, leaving DaemonSet pods, for at most 5 minutes
  berth drain berth-worker --ignore-daemonsets --timeout=5m

  # Show what a drain would evict without changing anything
  berth drain berth-worker --ignore-daemonsets --dry-run=client`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
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
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Complete fills the options from the command line and the factory.
func (o *Options) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("exactly one NODE is required, got %d arguments", len(args))
	}
	o.Node = args[0]
	var err error
	if o.DryRun, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if o.Client == nil {
		if o.Client, err = f.KubernetesClientSet(); err != nil {
			return fmt.Errorf("creating client: %w", err)
		}
	}
	return nil
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.Node == "" {
		return errors.New("a NODE name is required")
	}
	if o.Timeout < 0 {
		return fmt.Errorf("--timeout must not be negative, got %v", o.Timeout)
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
	if o.DryRun == cmdutil.DryRunClient || node.Spec.Unschedulable {
		state := "cordoned"
		if node.Spec.Unschedulable {
			state = "already cordoned"
		}
		fmt.Fprintf(o.Out, "node/%s %s%s\n", o.Node, state, suffix)
	} else {
		c := kdrain.NewCordonHelper(node)
		c.UpdateIfRequired(true)
		if err, patchErr := c.PatchOrReplaceWithContext(ctx, o.Client, o.DryRun == cmdutil.DryRunServer); err != nil {
			if patchErr != nil {
				err = fmt.Errorf("%w (building the patch failed too: %v)", err, patchErr)
			}
			return fmt.Errorf("cordoning node %q: %w", o.Node, err)
		}
		fmt.Fprintf(o.Out, "node/%s cordoned%s\n", o.Node, suffix)
	}

	plan, err := BuildPlan(ctx, o.Client, o.Node, o.PodSelector, o.Policy)
	if err != nil {
		return o.stillCordoned(err)
	}
	for _, w := range plan.Warnings() {
		fmt.Fprintf(o.ErrOut, "Warning: %s\n", w)
	}
	if err := plan.RefusalError(); err != nil {
		return o.stillCordoned(err)
	}

	pods := plan.PodsToEvict()
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
		PollInterval:       o.PollInterval,
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
		return o.stillCordoned(err)
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

// NewCmdCordon returns kubectl's cordon command (mark a node unschedulable).
func NewCmdCordon(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := kubectldrain.NewCmdCordon(f, streams)
	cmd.SilenceUsage = true
	return upstream.Rebrand(upstream.Wrap(cmd), "berth")
}

// NewCmdUncordon returns kubectl's uncordon command (mark a node schedulable).
func NewCmdUncordon(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := kubectldrain.NewCmdUncordon(f, streams)
	cmd.SilenceUsage = true
	return upstream.Rebrand(upstream.Wrap(cmd), "berth")
}
