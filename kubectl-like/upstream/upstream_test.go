package upstream

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	uexec "k8s.io/utils/exec"
)

func TestRunConvertsFatalErrors(t *testing.T) {
	err := Run(func() { cmdutil.CheckErr(errors.New("boom")) })
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 1 || exit.Error() != "boom" {
		t.Fatalf("Run = %#v, want ExitError{1, boom}", err)
	}

	err = Run(func() {
		cmdutil.CheckErr(uexec.CodeExitError{Err: errors.New("command terminated with exit code 3"), Code: 3})
	})
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("remote exit code: %#v", err)
	}

	err = Run(func() { cmdutil.CheckErr(cmdutil.ErrExit) })
	if !errors.As(err, &exit) || exit.Code != 1 || exit.Error() != "exit status 1" {
		t.Errorf("ErrExit: %#v", err)
	}

	if err := Run(func() { cmdutil.CheckErr(nil) }); err != nil {
		t.Errorf("no error: %v", err)
	}
}

func TestRunRestoresHandlerAndRepanics(t *testing.T) {
	defer func() {
		if r := recover(); r != "other" {
			t.Errorf("recovered %v, want the original panic", r)
		}
	}()
	_ = Run(func() { panic("other") })
}

func TestWrapAndRebrand(t *testing.T) {
	ran := false
	cmd := &cobra.Command{
		Use:     "thing",
		Example: "  kubectl thing foo",
		Run: func(*cobra.Command, []string) {
			ran = true
			cmdutil.CheckErr(errors.New("error: nope"))
		},
	}
	Rebrand(Wrap(cmd), "berth")
	if cmd.Run != nil || cmd.RunE == nil {
		t.Fatal("Wrap must replace Run with RunE")
	}
	if err := cmd.RunE(cmd, nil); !ran || err == nil || err.Error() != "nope" {
		t.Errorf("RunE = %v (ran %v)", err, ran)
	}
	if !strings.Contains(cmd.Example, "berth thing foo") {
		t.Errorf("Example = %q", cmd.Example)
	}
}
