package upstream

import (
	"strings"

	"github.com/spf13/cobra"
)

// Rebrand rewrites the examples of a kubectl command so that they show the
// berth invocation ("kubectl label ..." becomes "berth label ...").
func Rebrand(cmd *cobra.Command, binary string) *cobra.Command {
	cmd.Example = strings.ReplaceAll(cmd.Example, "kubectl ", binary+" ")
	cmd.Long = strings.ReplaceAll(cmd.Long, "kubectl ", binary+" ")
	return cmd
}
