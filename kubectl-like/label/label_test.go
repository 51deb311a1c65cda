package label_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-dev/berth/kubectl-like/internal/fakeapi"
	"github.com/berth-dev/berth/kubectl-like/label"
	"github.com/berth-dev/berth/kubectl-like/upstream"
)

func pod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels}}
}

func labelsOf(t *testing.T, s *fakeapi.Server, name string) map[string]string {
	t.Helper()
	p, err := s.Clientset.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting pod %s: %v", name, err)
	}
	return p.Labels
}

// kubectl's label semantics are kubectl's own and tested there; these
// tests check berth's wiring: the command runs on berth's connection
// flags and returns kubectl's failures as errors with its exit code.

func newServer(t *testing.T) *fakeapi.Server {
	return fakeapi.New(t,
		pod("web", map[string]string{"app": "web", "tier": "frontend"}),
		pod("db", map[string]string{"app": "db"}),
	)
}

func TestAddLabel(t *testing.T) {
	s := newServer(t)
	out, _, err := s.Run(t, label.NewCmdLabel, "pods", "web", "env=prod")
	if err != nil {
		t.Fatalf("label: %v", err)
	}
	if strings.TrimSpace(out) != "pod/web labeled" {
		t.Errorf("output = %q, want %q", out, "pod/web labeled")
	}
	got := labelsOf(t, s, "web")
	if got["env"] != "prod" || got["app"] != "web" || got["tier"] != "frontend" {
		t.Errorf("labels = %v, want env=prod added to app=web,tier=frontend", got)
	}
}

func TestRefuseOverwriteWithoutFlag(t *testing.T) {
	s := newServer(t)
	_, _, err := s.Run(t, label.NewCmdLabel, "pods", "web", "app=other")
	if err == nil {
		t.Fatal("label succeeded, want a refusal to overwrite")
	}
	want := "'app' already has a value (web), and --overwrite is false"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	var exit *upstream.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("error %T should be an *upstream.ExitError with code 1", err)
	}
	if got := labelsOf(t, s, "web")["app"]; got != "web" {
		t.Errorf("app label changed to %q despite the refusal", got)
	}
}

func TestUsesConfiguredContext(t *testing.T) {
	s := newServer(t)
	flags := s.ConfigFlags()
	other := "other" // points at an unreachable server
	flags.Context = &other
	if _, _, err := fakeapi.RunWithFlags(t, flags, label.NewCmdLabel, "pods", "web", "a=b"); err == nil {
		t.Fatal("label against the unreachable context succeeded; the context flag is ignored")
	}
	if _, ok := labelsOf(t, s, "web")["a"]; ok {
		t.Error("pod labeled through the wrong context")
	}
}
