// Package expose provides `berth expose`, kubectl's expose command running on
// berth's connection flags.
package expose

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubectlexpose "k8s.io/kubectl/pkg/cmd/expose"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/berth-dev/berth/kubectl-like/upstream"
)

// NewCmdExpose returns the expose command: it creates a Service for a pod,
// service, deployment, replica set or replication controller, deriving the
// selector and ports from the exposed object unless --selector, --port or
// --target-port say otherwise. Failures are returned from RunE.
func NewCmdExpose(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := kubectlexpose.NewCmdExposeService(f, streams)
	cmd.SilenceUsage = true
	return upstream.Rebrand(upstream.Wrap(cmd), "berth")
}
