//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTTY drives berth's interactive side in a real terminal (tmux): the
// live status view, a picker, confirmations answered no and yes; and
// checks that without a terminal the same commands print no escape codes
// and never wait for input.
func TestTTY(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed")
	}
	const name = "ui-a"
	client := createCluster(t, name)
	node := name + "-control-plane"
	ctx := context.Background()

	t.Run("no terminal", func(t *testing.T) {
		out := quietBerth(t, false)
		if !strings.Contains(out, "Usage:") {
			t.Errorf("berth without arguments and terminal printed no help:\n%s", out)
		}
		out = quietBerth(t, false, "status", "--name", name)
		if !strings.Contains(out, node) || !strings.Contains(out, "Ready") {
			t.Errorf("status snapshot lacks the ready node:\n%s", out)
		}
		var snap struct {
			Cluster string `json:"cluster"`
			Nodes   []struct {
				Name       string  `json:"name"`
				Status     string  `json:"status"`
				Pods       int     `json:"pods"`
				CPUPercent float64 `json:"cpuPercent"`
				Memory     uint64  `json:"memoryBytes"`
			} `json:"nodes"`
		}
		out = quietBerth(t, false, "status", "--name", name, "-o", "json")
		if err := json.Unmarshal([]byte(out), &snap); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
		if snap.Cluster != name || len(snap.Nodes) != 1 || snap.Nodes[0].Status != "Ready" || snap.Nodes[0].Pods == 0 || snap.Nodes[0].Memory == 0 {
			t.Errorf("status -o json = %+v", snap)
		}
		// A node that is not named is not drained without a terminal.
		out = quietBerth(t, true, "drain")
		if !strings.Contains(out, "Using node "+node) || !strings.Contains(out, "--yes") {
			t.Errorf("drain without node and terminal:\n%s", out)
		}
		if n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err != nil || n.Spec.Unschedulable {
			t.Fatalf("node after the refused commands: %v (unschedulable: %v)", err, n != nil && n.Spec.Unschedulable)
		}
	})

	mustBerth(t, "kubectl", "--", "create", "service", "clusterip", "svc-a", "--tcp=80:8080")
	mustBerth(t, "kubectl", "--", "create", "service", "clusterip", "svc-b", "--tcp=81:8081")
	t.Run("no terminal, several services", func(t *testing.T) {
		out := quietBerth(t, true, "service")
		if !strings.Contains(out, "svc-a") || !strings.Contains(out, "svc-b") || !strings.Contains(out, "no terminal") {
			t.Errorf("service without name and terminal:\n%s", out)
		}
	})

	tm := newTmux(t)

	t.Run("status", func(t *testing.T) {
		tm.run(t, "status", "--name", name)
		tm.waitFor(t, "q quit", 30*time.Second)
		tm.waitFor(t, node, 30*time.Second)
		tm.send(t, "q")
		tm.waitExit(t, 0)
	})

	t.Run("service picker", func(t *testing.T) {
		tm.run(t, "service")
		tm.waitFor(t, "Which service?", 20*time.Second)
		screen := tm.waitFor(t, "svc-b", 5*time.Second)
		if !strings.Contains(screen, "svc-a") || !strings.Contains(screen, "kubernetes") {
			t.Errorf("picker does not list every service:\n%s", screen)
		}
		tm.typeText(t, "-b")
		tm.send(t, "Enter")
		// svc-b is a ClusterIP service: berth explains that it is only
		// reachable inside the cluster, and fails.
		screen = tm.waitFor(t, "[exit ", 20*time.Second)
		if !strings.Contains(screen, "Using service svc-b") || !strings.Contains(screen, "default/svc-b is of type ClusterIP") {
			t.Errorf("service svc-b was not used:\n%s", screen)
		}
	})

	t.Run("drain declined", func(t *testing.T) {
		tm.run(t, "drain", "--ignore-daemonsets")
		tm.waitFor(t, "Using node "+node, 20*time.Second)
		screen := tm.waitFor(t, "[y/N]", 20*time.Second)
		if !strings.Contains(screen, "will be cordoned") || !strings.Contains(screen, "kube-system/coredns") {
			t.Errorf("drain confirmation does not show what it evicts:\n%s", screen)
		}
		tm.send(t, "n")
		tm.waitExit(t, 0)
		if n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err != nil || n.Spec.Unschedulable {
			t.Errorf("declined drain changed the node: %v", err)
		}
	})

	t.Run("delete declined then confirmed", func(t *testing.T) {
		tm.run(t, "delete", "cluster", "--name", name)
		screen := tm.waitFor(t, "[y/N]", 20*time.Second)
		if !strings.Contains(screen, "Delete cluster "+name+"?") || !strings.Contains(screen, node) {
			t.Errorf("delete confirmation does not show the nodes:\n%s", screen)
		}
		tm.send(t, "n")
		tm.waitExit(t, 0)
		if !strings.Contains(tm.capture(t), "Nothing deleted") {
			t.Errorf("declined delete:\n%s", tm.capture(t))
		}
		if c, _, _, err := provider(t).ClusterObjects(ctx, name); err != nil || c == 0 {
			t.Fatalf("declined delete removed the cluster (%d containers, %v)", c, err)
		}

		tm.run(t, "delete", "cluster", "--name", name)
		tm.waitFor(t, "[y/N]", 20*time.Second)
		tm.send(t, "y")
		tm.waitExit(t, 60*time.Second)
		screen = tm.capture(t)
		if !strings.Contains(screen, "deleting cluster "+name) {
			t.Errorf("confirmed delete:\n%s", screen)
		}
		assertNothingLeft(t, name)
	})
}

// quietBerth runs berth without a terminal (stdin /dev/null, output to
// pipes) within 60 s, checks that nothing it printed has escape codes,
// and returns stdout and stderr. wantErr tells whether it must fail.
func quietBerth(t *testing.T, wantErr bool, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, args...)
	cmd.Dir = repoRoot
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cmd.Stdin = devnull
	out, err := cmd.CombinedOutput()
	t.Logf("berth %s (no terminal)\n%s", strings.Join(args, " "), out)
	if ctx.Err() != nil {
		t.Fatalf("berth %s waited for input without a terminal", strings.Join(args, " "))
	}
	if (err != nil) != wantErr {
		t.Errorf("berth %s: error %v, want error: %v", strings.Join(args, " "), err, wantErr)
	}
	if strings.Contains(string(out), "\x1b") {
		t.Errorf("berth %s printed escape codes without a terminal: %q", strings.Join(args, " "), out)
	}
	return string(out)
}

// tmux is a terminal on a private tmux server; each run starts berth in
// a fresh window that stays open after berth exits.
type tmux struct {
	socket string
	window int
}

func newTmux(t *testing.T) *tmux {
	tm := &tmux{socket: fmt.Sprintf("berth-e2e-%d", os.Getpid())}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", tm.socket, "kill-server").Run() })
	return tm
}

func (tm *tmux) target() string { return fmt.Sprintf("w%d", tm.window) }

func (tm *tmux) tmux(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// run starts berth with args in a new 120x40 window. CI is unset there:
// the point is to behave as a person's terminal.
func (tm *tmux) run(t *testing.T, args ...string) {
	t.Helper()
	tm.window++
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	shell := fmt.Sprintf("cd '%s' && env -u CI -u NO_COLOR KUBECONFIG='%s' '%s' %s; echo \"[exit $?]\"; sleep 600",
		repoRoot, kubeconfig, berthBin, strings.Join(quoted, " "))
	if tm.window == 1 {
		tm.tmux(t, "new-session", "-d", "-s", "e2e", "-n", tm.target(), "-x", "120", "-y", "40", shell)
	} else {
		tm.tmux(t, "new-window", "-t", "e2e", "-n", tm.target(), shell)
	}
	t.Logf("tmux: berth %s", strings.Join(args, " "))
}

func (tm *tmux) capture(t *testing.T) string {
	t.Helper()
	return tm.tmux(t, "capture-pane", "-p", "-t", "e2e:"+tm.target())
}

func (tm *tmux) send(t *testing.T, keys string) {
	t.Helper()
	tm.tmux(t, "send-keys", "-t", "e2e:"+tm.target(), keys)
}

// typeText types text literally.
func (tm *tmux) typeText(t *testing.T, text string) {
	t.Helper()
	tm.tmux(t, "send-keys", "-t", "e2e:"+tm.target(), "-l", "--", text)
}

// waitFor waits until the screen shows want and returns the screen.
func (tm *tmux) waitFor(t *testing.T, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	var screen string
	for time.Now().Before(deadline) {
		screen = tm.capture(t)
		if strings.Contains(screen, want) {
			return screen
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the terminal did not show %q within %s:\n%s", want, within, screen)
	return ""
}

// waitExit waits until berth exited with code 0 (within is 20 s by default).
func (tm *tmux) waitExit(t *testing.T, within time.Duration) {
	t.Helper()
	if within == 0 {
		within = 20 * time.Second
	}
	screen := tm.waitFor(t, "[exit ", within)
	if !strings.Contains(screen, "[exit 0]") {
		t.Errorf("berth failed:\n%s", screen)
	}
}
