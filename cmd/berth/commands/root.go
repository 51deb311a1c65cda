// Package commands holds berth's cobra command tree. Each command follows
// kubectl's pattern: an options struct filled from flags (Complete),
// checked (Validate) and executed (Run), with IO streams injected so
// every command can be tested without a terminal.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/provider/docker"
	"github.com/berth-dev/berth/cmd/berth/ui"
	kubectllike "github.com/berth-dev/berth/kubectl-like"
)

// Streams are a command's standard streams.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StdStreams returns the process's streams.
func StdStreams() Streams { return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// Globals are the flags every command has.
type Globals struct {
	Streams
	Verbose int
	Quiet   bool
	NoColor bool
}

// Log returns the logger for the chosen verbosity (warnings by default).
func (g *Globals) Log() *slog.Logger {
	level := slog.LevelWarn
	switch {
	case g.Quiet:
		level = slog.LevelError
	case g.Verbose == 1:
		level = slog.LevelInfo
	case g.Verbose >= 2:
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: level}))
}

// Theme returns the styles for stderr decoration.
func (g *Globals) Theme() *ui.Theme { return ui.NewTheme(ui.ColorEnabled(g.ErrOut, g.NoColor)) }

// Status returns the step reporter for long operations (on stderr, so
// stdout stays data). With --verbose, steps are plain log lines; with
// --quiet there are none (a failed step still ends the command with its
// error).
func (g *Globals) Status() progress.Reporter {
	if g.Quiet {
		return progress.Discard{}
	}
	if g.Verbose > 0 {
		return &progress.Plain{W: g.ErrOut}
	}
	return ui.Reporter(g.ErrOut, g.Theme(), false)
}

// Provider connects to the container engine.
func (g *Globals) Provider(ctx context.Context) (provider.Provider, error) {
	return docker.New(ctx, g.Log())
}

// Version is set at release time with -ldflags.
var Version = "dev"

// NewRoot builds the command tree.
func NewRoot(streams Streams) *cobra.Command {
	g := &Globals{Streams: streams}
	root := &cobra.Command{
		Use:   "berth",
		Short: "Local multi-node Kubernetes clusters in Docker, in seconds",
		Long: `berth creates real, upstream Kubernetes clusters as Docker containers on
this machine, and drives the workloads on them with kubectl-style commands.

  berth create cluster            # a one-node cluster named "berth"
  berth get nodes
  berth load image myapp:dev
  berth delete cluster

Run berth with no arguments at a terminal for an overview of your clusters.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PersistentPreRun: func(*cobra.Command, []string) {
			g.applyColor()
			// Libraries that log through slog's default (cluster/load's
			// phase timings, its failed-import details) show with -v/-vv.
			slog.SetDefault(g.Log())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !ui.Interactive(g.In, g.Out) {
				return cmd.Help()
			}
			return overview(cmd.Context(), g)
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	pf := root.PersistentFlags()
	pf.CountVarP(&g.Verbose, "verbose", "v", "log more (repeat for debug logs); steps become plain log lines")
	pf.BoolVarP(&g.Quiet, "quiet", "q", false, "print only results and errors")
	pf.BoolVar(&g.NoColor, "no-color", false, "never use colour (also: NO_COLOR=1)")

	root.AddCommand(
		newCreateCommand(g),
		newDeleteCommand(g),
		newGetCommand(g),
		newLoadCommand(g),
		newBuildCommand(g),
		newVersionCommand(g),
		newStopCommand(g),
		newStartCommand(g),
		newStatusCommand(g),
		newSnapshotCommand(g),
	)
	addWorkloadCommands(root, g)
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command that only groups others
// (`berth get`, `berth delete`, ...) fail on an unknown subcommand. cobra
// would print the group's help and exit 0, and a script would take a
// typo for success.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		refuseUnknownSubcommands(c)
	}
	if cmd == cmd.Root() || !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		return fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())
	}
}

// Execute runs the command line and returns the exit code: 0, kubectl's
// own code for a failure of a kubectl-built command (`berth kubectl --
// exec POD -- sh -c 'exit 3'` exits 3, as kubectl does), 130 for an
// interrupt, else 1. A panic is reported as an internal error in one
// line, never as a Go stack trace (BERTH_TRACEBACK=1 shows it).
func Execute(ctx context.Context, streams Streams) int {
	return ExecuteArgs(ctx, streams, os.Args[1:])
}

// ExecuteArgs is Execute with the arguments given (without the program
// name).
func ExecuteArgs(ctx context.Context, streams Streams, args []string) (code int) {
	root := NewRoot(streams)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nsee `%s --help` for its flags", err, cmd.CommandPath())
	})
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if os.Getenv("BERTH_TRACEBACK") == "1" {
			panic(r)
		}
		code = reportError(streams.ErrOut, fmt.Errorf("internal error: %v\nthis is a bug in berth: please report it with the command you ran (BERTH_TRACEBACK=1 prints where it happened)", r))
	}()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		err = fmt.Errorf("%w\nrun `%s --help` to see the commands", err, cmd.CommandPath())
	}
	return reportError(streams.ErrOut, err)
}

// reportError prints err as berth's one-line "error: ..." message (unless
// the error says everything was already printed) and returns the exit
// code it asks for.
func reportError(w io.Writer, err error) int {
	code := ExitCode(err)
	msg := err.Error()
	var exit *kubectllike.ExitError
	if errors.As(err, &exit) && exit.Message == "" {
		// kubectl printed its error itself.
		return code
	}
	if errors.Is(err, context.Canceled) {
		msg = "interrupted"
	}
	fmt.Fprintf(w, "%s %s\n", ui.NewTheme(ui.ColorEnabled(w, false)).Fail.Render("error:"), msg)
	return code
}

// ExitCode is the process exit code for err: the code an error carries
// (kubectl's ExitError, an *exec.ExitError), 130 for an interrupt (the
// shell's code for SIGINT), else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		if c := coded.ExitCode(); c > 0 && c < 256 {
			return c
		}
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

// addNameFlag registers --name (the cluster) with berth's default, and
// its completion with the clusters that exist. Commands that call
// ResolveCluster use the default only when a cluster "berth" exists or
// none does.
func addNameFlag(cmd *cobra.Command, name *string) {
	cmd.Flags().StringVar(name, "name", config.DefaultName, "cluster name (default: \"berth\", else the only cluster, else pick one)")
	_ = cmd.RegisterFlagCompletionFunc("name", completeClusterNames)
}

// applyColor honours --no-color everywhere, also in the workload
// commands that only see NO_COLOR.
func (g *Globals) applyColor() {
	if g.NoColor {
		ui.DisableColor()
	}
}
