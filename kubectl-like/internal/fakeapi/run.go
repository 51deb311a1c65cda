package fakeapi

import (
	"context"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// Factory returns a kubectl factory for flags, as berth builds it.
func Factory(flags *genericclioptions.ConfigFlags) cmdutil.Factory {
	return cmdutil.NewFactory(cmdutil.NewMatchVersionFlags(flags))
}

// Run builds a command with newCmd against the server's context, runs it
// under a "berth" root with args and returns what it printed and its error. Each call uses a
// fresh command, so flags never leak between runs.
func (s *Server) Run(t testing.TB, newCmd func(cmdutil.Factory, genericiooptions.IOStreams) *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return RunWithFlags(t, s.ConfigFlags(), newCmd, args...)
}

// RunWithFlags is Run with explicit connection flags.
func RunWithFlags(t testing.TB, flags *genericclioptions.ConfigFlags, newCmd func(cmdutil.Factory, genericiooptions.IOStreams) *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := newCmd(Factory(flags), streams)
	root := &cobra.Command{Use: "berth", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(cmd)
	root.SetArgs(append([]string{cmd.Name()}, args...))
	root.SetOut(out)
	root.SetErr(errOut)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}
