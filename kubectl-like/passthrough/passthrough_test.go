package passthrough

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/berth-dev/berth/kubectl-like/internal/fakeapi"
	"github.com/berth-dev/berth/kubectl-like/upstream"
)

func strp(s string) *string { return &s }

func TestInjectConnectionFlags(t *testing.T) {
	flags := &genericclioptions.ConfigFlags{Context: strp("berth-dev"), KubeConfig: strp("/tmp/kc"), Namespace: strp("")}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"get", "pods"}, []string{"--kubeconfig=/tmp/kc", "--context=berth-dev", "get", "pods"}},
		{[]string{"--context=other", "get", "pods"}, []string{"--kubeconfig=/tmp/kc", "--context=other", "get", "pods"}},
		{[]string{"get", "pods", "--context", "other", "--kubeconfig=/x"}, []string{"get", "pods", "--context", "other", "--kubeconfig=/x"}},
		// Arguments after "--" belong to the command kubectl runs.
		{[]string{"exec", "p", "--", "tool", "--context=x"}, []string{"--kubeconfig=/tmp/kc", "--context=berth-dev", "exec", "p", "--", "tool", "--context=x"}},
	}
	for _, c := range cases {
		if got := InjectConnectionFlags(c.args, flags); !reflect.DeepEqual(got, c.want) {
			t.Errorf("InjectConnectionFlags(%q) = %q, want %q", c.args, got, c.want)
		}
	}

	ns := &genericclioptions.ConfigFlags{Namespace: strp("apps")}
	for args, want := range map[string]string{
		"get pods":                "--namespace=apps get pods",
		"get pods -n kube-system": "get pods -n kube-system",
		"get pods -nkube-system":  "get pods -nkube-system",
		"-n=x get pods":           "-n=x get pods",
		"get pods --namespace x":  "get pods --namespace x",
	} {
		if got := strings.Join(InjectConnectionFlags(strings.Fields(args), ns), " "); got != want {
			t.Errorf("InjectConnectionFlags(%q) = %q, want %q", args, got, want)
		}
	}
	if got := InjectConnectionFlags([]string{"version"}, &genericclioptions.ConfigFlags{}); !reflect.DeepEqual(got, []string{"version"}) {
		t.Errorf("with nothing set: %q", got)
	}
	if got := InjectConnectionFlags([]string{"version"}, nil); !reflect.DeepEqual(got, []string{"version"}) {
		t.Errorf("with nil flags: %q", got)
	}
}

func setup(t *testing.T) *fakeapi.Server {
	t.Helper()
	t.Setenv("HOME", t.TempDir()) // kubectl's caches and kuberc
	t.Setenv("KUBECONFIG", "")
	return fakeapi.New(t,
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: "kube-system"}},
	)
}

func run(t *testing.T, flags *genericclioptions.ConfigFlags, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	err := Run(context.Background(), flags, streams, args)
	return out.String(), errOut.String(), err
}

func TestRunUsesBerthContext(t *testing.T) {
	s := setup(t)
	// The kubeconfig's current-context ("other") is unreachable, so these
	// only work if the berth context is injected.
	out, errOut, err := run(t, s.ConfigFlags(), "get", "pods", "-o", "name")
	if err != nil {
		t.Fatalf("kubectl get pods: %v\nstderr: %s", err, errOut)
	}
	if strings.TrimSpace(out) != "pod/web" {
		t.Errorf("stdout = %q, want pod/web", out)
	}

	flags := s.ConfigFlags()
	flags.Namespace = strp("kube-system")
	out, _, err = run(t, flags, "get", "pods", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "pod/dns" {
		t.Errorf("with berth -n kube-system: out=%q err=%v", out, err)
	}
	out, _, err = run(t, flags, "get", "pods", "-n", "default", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "pod/web" {
		t.Errorf("kubectl's own -n must win: out=%q err=%v", out, err)
	}

	// An explicit --context in the kubectl arguments wins over berth's.
	if _, _, err := run(t, s.ConfigFlags(), "--context=other", "--request-timeout=2s", "get", "pods"); err == nil {
		t.Error("explicit --context=other (unreachable) was overridden")
	}
}

func TestRunErrors(t *testing.T) {
	s := setup(t)
	_, _, err := run(t, s.ConfigFlags(), "get", "nosuchkind")
	var exit *upstream.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(err.Error(), `the server doesn't have a resource type "nosuchkind"`) {
		t.Errorf("unknown resource type: %v (%T)", err, err)
	}
	if _, _, err := run(t, s.ConfigFlags(), "frobnicate"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
}

func TestCommandRequiresDashDashForFlags(t *testing.T) {
	s := setup(t)
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdKubectl(s.ConfigFlags(), streams)
	cmd.SetArgs([]string{"--", "get", "pods", "-o", "name"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("berth kubectl -- get pods -o name: %v", err)
	}
	if strings.TrimSpace(out.String()) != "pod/web" {
		t.Errorf("stdout = %q", out)
	}

	cmd = NewCmdKubectl(s.ConfigFlags(), streams)
	cmd.SetArgs([]string{"get", "pods", "-o", "name"})
	cmd.SilenceErrors = true
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `after "--"`) {
		t.Errorf("flags without --: %v", err)
	}
}
