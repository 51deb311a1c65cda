// Package scale provides `berth scale`: kubectl's scale command, extended
// with --wait to block until the new replica count is ready.
package scale

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/resource"
	kubectlscale "k8s.io/kubectl/pkg/cmd/scale"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/berth-dev/berth/kubectl-like/upstream"
)

// DefaultWaitTimeout bounds --wait when --timeout is not given.
const DefaultWaitTimeout = 5 * time.Minute

// WaitOptions holds berth's additions to kubectl scale.
type WaitOptions struct {
	// Wait makes the command block until the scaled objects run the new
	// number of ready replicas.
	Wait bool
	// Interval between readiness checks.
	Interval time.Duration

	genericiooptions.IOStreams
}

// NewCmdScale returns the scale command. Everything but --wait is kubectl's
// scale (--replicas, --current-replicas, --resource-version, -l, --all,
// --timeout, -o, --dry-run, -f). With --wait the command then waits, up to
// --timeout (default 5m), until every scaled object has that many ready
// replicas, printing progress on stderr.
func NewCmdScale(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := kubectlscale.NewCmdScale(f, streams)
	cmd.SilenceUsage = true
	upstream.Rebrand(cmd, "berth")
	cmd.Example += "\n\n  # Scale deployment web to 3 and wait until the 3 replicas are ready\n  berth scale deployment web --replicas=3 --wait --timeout=2m"
	o := &WaitOptions{Interval: time.Second, IOStreams: streams}
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "After scaling, wait until the new number of replicas is ready (up to --timeout, default 5m).")
	if fl := cmd.Flags().Lookup("timeout"); fl != nil {
		fl.Usage = "With --wait: how long to wait for the replicas to be ready (default 5m, 0 means no limit). " +
			"Without --wait: how long to wait for the replica count to change, 0 means don't wait."
	}
	run := cmd.Run
	cmd.Run = nil
	cmd.RunE = func(c *cobra.Command, args []string) error {
		timeout := DefaultWaitTimeout
		if o.Wait && c.Flags().Changed("timeout") {
			timeout = cmdutil.GetFlagDuration(c, "timeout")
		}
		if o.Wait {
			// kubectl's own --timeout wait (for status.replicas only)
			// would spend the time budget first; --wait replaces it.
			if err := c.Flags().Set("timeout", "0s"); err != nil {
				return err
			}
		}
		if err := upstream.Run(func() { run(c, args) }); err != nil {
			return err
		}
		if !o.Wait {
			return nil
		}
		return o.Run(c.Context(), f, c, args, timeout)
	}
	return cmd
}

// Run waits, up to timeout, for the objects selected by the scale command
// line to become ready at the requested size.
func (o *WaitOptions) Run(ctx context.Context, f cmdutil.Factory, cmd *cobra.Command, args []string, timeout time.Duration) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dryRun, err := cmdutil.GetDryRunStrategy(cmd)
	if err != nil {
		return err
	}
	if dryRun != cmdutil.DryRunNone {
		return nil
	}
	replicas := cmdutil.GetFlagInt(cmd, "replicas")

	targets, err := resolveTargets(f, cmd, args)
	if err != nil {
		return fmt.Errorf("finding the scaled objects to wait for: %w", err)
	}
	var waitable []Target
	for _, t := range targets {
		if Supported(t.GroupKind) {
			waitable = append(waitable, t)
		} else {
			fmt.Fprintf(o.ErrOut, "warning: --wait does not know how to check readiness of %s; not waiting for it\n", t)
		}
	}
	client, err := f.KubernetesClientSet()
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	return WaitForReady(ctx, client, waitable, int32(replicas), o.Interval, timeout, o.ErrOut)
}

// resolveTargets re-runs the scale command's object selection.
func resolveTargets(f cmdutil.Factory, cmd *cobra.Command, args []string) ([]Target, error) {
	namespace, enforceNamespace, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, err
	}
	fileOpts := &resource.FilenameOptions{
		Filenames: cmdutil.GetFlagStringSlice(cmd, "filename"),
		Kustomize: cmdutil.GetFlagString(cmd, "kustomize"),
		Recursive: cmdutil.GetFlagBool(cmd, "recursive"),
	}
	infos, err := f.NewBuilder().
		Unstructured().
		ContinueOnError().
		NamespaceParam(namespace).DefaultNamespace().
		FilenameParam(enforceNamespace, fileOpts).
		ResourceTypeOrNameArgs(cmdutil.GetFlagBool(cmd, "all"), args...).
		Flatten().
		LabelSelectorParam(cmdutil.GetFlagString(cmd, "selector")).
		Do().Infos()
	if err != nil {
		return nil, err
	}
	targets := make([]Target, 0, len(infos))
	for _, info := range infos {
		targets = append(targets, Target{
			GroupKind: info.Mapping.GroupVersionKind.GroupKind(),
			Namespace: info.Namespace,
			Name:      info.Name,
		})
	}
	return targets, nil
}
