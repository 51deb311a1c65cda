// Package label provides `berth label`, kubectl's label command running on
// berth's connection flags.
package label

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubectllabel "k8s.io/kubectl/pkg/cmd/label"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/berth-dev/berth/kubectl-like/upstream"
)

// NewCmdLabel returns the label command. Semantics, flags and messages are
// kubectl's: an existing value is only replaced with --overwrite, "key-"
// removes a label, and setting and removing the same key in one call is an
// error. Failures are returned from RunE.
func NewCmdLabel(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := kubectllabel.NewCmdLabel(f, streams)
	cmd.SilenceUsage = true
	return upstream.Rebrand(upstream.Wrap(cmd), "berth")
}
