package commands

import (
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubectl/pkg/util/completion"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	kubectllike "github.com/berth-dev/berth/kubectl-like"
)

// addWorkloadCommands adds the kubectl-style commands. They take kubectl's
// connection flags (--kubeconfig, --context, -n, ...) and, without
// --context, talk to a berth cluster: the current context if it is one,
// else berth-berth if it exists, else whatever is current.
func addWorkloadCommands(root *cobra.Command, g *Globals) {
	flags := genericclioptions.NewConfigFlags(true)
	streams := genericiooptions.IOStreams{In: g.In, Out: g.Out, ErrOut: g.ErrOut}
	f := kubectllike.NewFactory(flags)
	for _, cmd := range kubectllike.NewCommands(flags, streams, workloadPrompt{g}) {
		flags.AddFlags(cmd.PersistentFlags())
		presetContext := func() {
			if flags.Context == nil || *flags.Context != "" {
				return
			}
			if ctx := defaultContext(flags); ctx != "" {
				*flags.Context = ctx
			}
		}
		cmd.PersistentPreRun = func(*cobra.Command, []string) {
			g.applyColor()
			presetContext()
		}
		// Shell completion runs no PreRun hooks: preset the context
		// before completing names from the cluster.
		if complete := cmd.ValidArgsFunction; complete != nil {
			cmd.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				presetContext()
				return complete(c, args, toComplete)
			}
		}
		_ = cmd.RegisterFlagCompletionFunc("namespace", func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			presetContext()
			return completion.CompGetResource(f, "namespace", toComplete), cobra.ShellCompDirectiveNoFileComp
		})
		cmd.GroupID = "workloads"
		root.AddCommand(cmd)
	}
	root.AddGroup(&cobra.Group{ID: "workloads", Title: "Workload commands (kubectl-style; any kubeconfig context):"})
}

func defaultContext(flags *genericclioptions.ConfigFlags) string {
	// Read the kubeconfig with a loader of our own: ConfigFlags caches
	// its loader on first use, and the context must be set before that.
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if flags.KubeConfig != nil && *flags.KubeConfig != "" {
		rules.ExplicitPath = *flags.KubeConfig
	}
	raw, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).RawConfig()
	if err != nil {
		return ""
	}
	if strings.HasPrefix(raw.CurrentContext, "berth-") {
		return raw.CurrentContext
	}
	if _, ok := raw.Contexts[kubeconfig.ContextName(config.DefaultName)]; ok {
		return kubeconfig.ContextName(config.DefaultName)
	}
	return ""
}
