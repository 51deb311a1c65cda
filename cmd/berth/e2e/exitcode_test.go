//go:build e2e

package e2e

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKubectlExitCode checks that berth exits with kubectl's exit code:
// a command run with `berth kubectl -- exec` that exits 3 makes berth
// exit 3, as kubectl does, so scripts can tell failures apart.
func TestKubectlExitCode(t *testing.T) {
	const name = "rel-exit"
	createCluster(t, name)
	ctx := "--context=berth-" + name
	mustBerth(t, "kubectl", "--", ctx, "run", "sh", "--image=docker.io/library/busybox:1.35-berth",
		"--image-pull-policy=Never", "--restart=Never", "--command", "--", "sleep", "3600")
	mustBerth(t, "kubectl", "--", ctx, "wait", "--for=condition=Ready", "pod/sh", "--timeout=3m")

	for _, want := range []int{0, 3, 42} {
		cmd := exec.Command(berthBin, "kubectl", "--", ctx, "exec", "sh", "--", "sh", "-c", "exit "+strconv.Itoa(want))
		out, err := cmd.CombinedOutput()
		got := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			got = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("exec exiting %d: berth exited %d (%s)", want, got, out)
		}
		if strings.Contains(string(out), "goroutine ") {
			t.Errorf("stack trace printed: %s", out)
		}
	}
	// A kubectl failure of its own (a pod that does not exist) is 1.
	start := time.Now()
	err := exec.Command(berthBin, "kubectl", "--", ctx, "get", "pod", "nosuchpod").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("get of a missing pod: %v (after %s), want exit 1", err, time.Since(start))
	}
}
