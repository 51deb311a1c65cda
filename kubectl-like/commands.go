// Package kubectllike holds berth's kubectl-style workload commands: label,
// scale, expose, drain, cordon, uncordon, service and the kubectl
// pass-through. They are built on k8s.io/kubectl and client-go and talk to
// the cluster selected by the shared connection flags.
package kubectllike // import "github.com/berth-dev/berth/kubectl-like"

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/berth-dev/berth/kubectl-like/drain"
	"github.com/berth-dev/berth/kubectl-like/expose"
	"github.com/berth-dev/berth/kubectl-like/label"
	"github.com/berth-dev/berth/kubectl-like/passthrough"
	"github.com/berth-dev/berth/kubectl-like/prompt"
	"github.com/berth-dev/berth/kubectl-like/scale"
	"github.com/berth-dev/berth/kubectl-like/service"
	"github.com/berth-dev/berth/kubectl-like/upstream"
)

// ExitError is the error the commands built from kubectl return when kubectl
// would have exited; its ExitCode() is the code kubectl would have used.
type ExitError = upstream.ExitError

// NewCommands returns the workload commands. flags carries --kubeconfig, --context, -n/--namespace
// (the caller registers flags.AddFlags on the root's persistent flags and presets flags.Context to the
// berth cluster's context "berth-<name>" when the user gave no --context). p asks a person: it picks
// a node or service that was not named, and confirms a drain; nil means nobody is at a terminal.
func NewCommands(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams, p prompt.Prompter) []*cobra.Command {
	f := NewFactory(flags)
	p = prompt.OrNoTerminal(p, streams.ErrOut)
	return []*cobra.Command{
		label.NewCmdLabel(f, streams),
		scale.NewCmdScale(f, streams),
		expose.NewCmdExpose(f, streams),
		drain.NewCmdDrain(f, streams, p),
		drain.NewCmdCordon(f, streams, p),
		drain.NewCmdUncordon(f, streams, p),
		service.NewCmdService(f, streams, p),
		passthrough.NewCmdKubectl(flags, streams),
	}
}

// NewFactory returns the kubectl factory the commands use for flags. It
// reads flags lazily, when a command runs, so the caller may still change
// them (for example preset flags.Context) after calling it.
func NewFactory(flags *genericclioptions.ConfigFlags) cmdutil.Factory {
	return cmdutil.NewFactory(cmdutil.NewMatchVersionFlags(flags))
}
