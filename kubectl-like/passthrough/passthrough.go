// Package passthrough provides `berth kubectl -- ARGS...`: the complete
// upstream kubectl (k8s.io/kubectl/pkg/cmd) with berth's cluster context
// preselected.
package passthrough

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/component-base/logs"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"

	"github.com/berth-dev/berth/kubectl-like/upstream"
)

// NewCmdKubectl returns the kubectl pass-through command. Its arguments
// (after "--") go to kubectl unchanged, except that berth's --context,
// --kubeconfig and --namespace are added when set in flags and not given in
// the arguments.
func NewCmdKubectl(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubectl -- [KUBECTL ARGS...]",
		Short: "Run kubectl (built in) against the berth cluster",
		Long: `Run the built-in kubectl against the berth cluster.

Everything after "--" is passed to kubectl. Unless those arguments contain
their own --context, --kubeconfig or --namespace/-n, the berth cluster's
context, berth's --kubeconfig and berth's --namespace are used.`,
		Example: `  # List the pods of all namespaces of the berth cluster
  berth kubectl -- get pods -A

  # Apply a manifest
  berth kubectl -- apply -f app.yaml

  # Use another kubeconfig context explicitly
  berth kubectl -- --context=other get nodes`,
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return Run(cmd.Context(), flags, streams, args)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w\npass kubectl's own flags after \"--\", for example: berth kubectl -- get pods -o wide", err)
	})
	return cmd
}

// InjectConnectionFlags returns args prefixed with --kubeconfig, --context
// and --namespace taken from flags, each only when set in flags and not
// already present in args. Arguments after a "--" in args (for example the
// command of `kubectl exec`) are not inspected.
func InjectConnectionFlags(args []string, flags *genericclioptions.ConfigFlags) []string {
	var inject []string
	if flags != nil {
		if v := deref(flags.KubeConfig); v != "" && !hasFlag(args, "kubeconfig", "") {
			inject = append(inject, "--kubeconfig="+v)
		}
		if v := deref(flags.Context); v != "" && !hasFlag(args, "context", "") {
			inject = append(inject, "--context="+v)
		}
		if v := deref(flags.Namespace); v != "" && !hasFlag(args, "namespace", "n") {
			inject = append(inject, "--namespace="+v)
		}
	}
	return append(inject, args...)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// hasFlag reports whether args set the flag --long (or -short), in any of
// the forms --long, --long=v, -s, -s=v, -sv, before any "--".
func hasFlag(args []string, long, short string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--"+long || strings.HasPrefix(a, "--"+long+"=") {
			return true
		}
		if short != "" && !strings.HasPrefix(a, "--") && strings.HasPrefix(a, "-"+short) {
			return true
		}
	}
	return false
}

// argsMu guards the temporary replacement of os.Args in Run.
var argsMu sync.Mutex

// Run executes kubectl with args (after InjectConnectionFlags). kubectl's
// failures come back as an *upstream.ExitError carrying kubectl's exit code;
// errors of the command line itself (unknown command or flag) are returned
// as they are.
func Run(ctx context.Context, flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams, args []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	full := InjectConnectionFlags(args, flags)
	argv := append([]string{"kubectl"}, full...)

	var runErr error
	err := upstream.Run(func() {
		// kubectl reads its arguments from os.Args unless a kuberc alias
		// rewrote them; present it the arguments it is meant to see.
		argsMu.Lock()
		saved := os.Args
		os.Args = argv
		defer func() {
			os.Args = saved
			argsMu.Unlock()
		}()

		configFlags := genericclioptions.NewConfigFlags(true).
			WithDeprecatedPasswordFlag().
			WithDiscoveryBurst(300).
			WithDiscoveryQPS(50.0).
			WithWarningPrinter(streams)
		root := kubectlcmd.NewKubectlCommand(kubectlcmd.KubectlOptions{
			Arguments:   argv,
			ConfigFlags: configFlags,
			IOStreams:   streams,
		})
		logs.AddFlags(root.PersistentFlags())
		root.SetIn(streams.In)
		root.SetOut(streams.Out)
		root.SetErr(streams.ErrOut)
		root.SilenceErrors = true
		root.SilenceUsage = true
		runErr = root.ExecuteContext(ctx)
	})
	if err != nil {
		return err
	}
	return runErr
}
