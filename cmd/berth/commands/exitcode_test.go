package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-dev/berth/kubectl-like/upstream"
)

func TestExitCode(t *testing.T) {
	// The path `kubectl exec` takes when the remote command exits 3.
	execErr := upstream.Run(func() {
		cmdutil.CheckErr(utilexec.CodeExitError{Err: errors.New("command terminated with exit code 3"), Code: 3})
	})
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", errors.New("boom"), 1},
		{"kubectl exec", execErr, 3},
		{"wrapped kubectl", fmt.Errorf("running kubectl: %w", execErr), 3},
		{"kubectl ordinary", &upstream.ExitError{Code: 1, Message: "x"}, 1},
		{"out of range", &upstream.ExitError{Code: 300}, 1},
		{"interrupt", fmt.Errorf("creating: %w", context.Canceled), 130},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("%s: ExitCode = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	t.Setenv("KUBECONFIG", t.TempDir()+"/kubeconfig")
	code := ExecuteArgs(context.Background(), Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestExecuteUserErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		hint string
	}{
		{[]string{"nosuch"}, 1, "run `berth --help`"},
		{[]string{"get", "nosuch"}, 1, "run `berth get --help`"},
		{[]string{"get", "clusters", "--bogus"}, 1, "see `berth get clusters --help`"},
		{[]string{"kubectl", "--", "nosuchverb"}, 1, "unknown command"},
		{[]string{"kubectl", "--", "get", "pods", "--context", "nope"}, 1, "context was not found"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.hint) {
			t.Errorf("berth %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.hint)
		}
		if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic:") {
			t.Errorf("berth %s printed a stack trace: %s", strings.Join(tc.args, " "), errOut)
		}
	}
	// A group command with no subcommand still shows its help.
	if code, out, _ := run(t, "get"); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("berth get: exit %d, out %q", code, out)
	}
}

func TestReportErrorQuietWhenKubectlPrinted(t *testing.T) {
	var b strings.Builder
	if code := reportError(&b, &upstream.ExitError{Code: 2}); code != 2 || b.Len() != 0 {
		t.Errorf("code %d, printed %q", code, b.String())
	}
}
