// Package upstream adapts commands built by k8s.io/kubectl so that they can
// live inside another cobra tree: kubectl's commands report failures through
// cmdutil.CheckErr, which ends the process. The adapters here route those
// failures back to the caller as errors instead.
package upstream

import (
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// ExitError is returned when a kubectl command ends with a failure. Code is
// the exit code kubectl would have used (1 for ordinary errors, the remote
// command's code for `kubectl exec`, ...). Message is kubectl's message
// without its "error: " prefix; it may be empty when kubectl already printed
// everything it had to say.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Message
}

// ExitCode returns the process exit code the failure asks for.
func (e *ExitError) ExitCode() int { return e.Code }

// fatalSignal is the panic value used to unwind out of kubectl's fatal path.
type fatalSignal struct {
	msg  string
	code int
}

// mu serialises use of kubectl's process-wide fatal handler.
var mu sync.Mutex

// Run calls fn with kubectl's fatal-error handler redirected, and converts a
// fatal error raised inside fn into an *ExitError. Other panics propagate.
func Run(fn func()) (err error) {
	mu.Lock()
	defer mu.Unlock()
	cmdutil.BehaviorOnFatal(func(msg string, code int) {
		panic(fatalSignal{msg: msg, code: code})
	})
	defer cmdutil.DefaultBehaviorOnFatal()
	defer func() {
		if r := recover(); r != nil {
			sig, ok := r.(fatalSignal)
			if !ok {
				panic(r)
			}
			err = newExitError(sig.msg, sig.code)
		}
	}()
	fn()
	return nil
}

func newExitError(msg string, code int) error {
	if code == 0 {
		code = 1
	}
	msg = strings.TrimRight(msg, "\n")
	msg = strings.TrimPrefix(msg, "error: ")
	return &ExitError{Code: code, Message: msg}
}

// Wrap turns a kubectl command whose Run reports errors through
// cmdutil.CheckErr into one whose RunE returns them. The command is modified
// in place and returned.
func Wrap(cmd *cobra.Command) *cobra.Command {
	run := cmd.Run
	if run == nil {
		return cmd
	}
	cmd.Run = nil
	cmd.RunE = func(c *cobra.Command, args []string) error {
		return Run(func() { run(c, args) })
	}
	return cmd
}
