package label_test

import (
	"context"
	"encoding/json"
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

func TestOverwrite(t *testing.T) {
	s := newServer(t)
	out, _, err := s.Run(t, label.NewCmdLabel, "pods", "web", "app=other", "--overwrite")
	if err != nil {
		t.Fatalf("label --overwrite: %v", err)
	}
	if strings.TrimSpace(out) != "pod/web labeled" {
		t.Errorf("output = %q", out)
	}
	if got := labelsOf(t, s, "web")["app"]; got != "other" {
		t.Errorf("app = %q, want other", got)
	}
}

func TestSameValueNeedsNoOverwrite(t *testing.T) {
	s := newServer(t)
	out, _, err := s.Run(t, label.NewCmdLabel, "pods", "web", "app=web")
	if err != nil {
		t.Fatalf("label with unchanged value: %v", err)
	}
	if strings.TrimSpace(out) != "pod/web not labeled" {
		t.Errorf("output = %q, want %q", out, "pod/web not labeled")
	}
}

func TestRemove(t *testing.T) {
	s := newServer(t)
	out, _, err := s.Run(t, label.NewCmdLabel, "pods", "web", "tier-")
	if err != nil {
		t.Fatalf("label tier-: %v", err)
	}
	if strings.TrimSpace(out) != "pod/web unlabeled" {
		t.Errorf("output = %q, want %q", out, "pod/web unlabeled")
	}
	got := labelsOf(t, s, "web")
	if _, ok := got["tier"]; ok || got["app"] != "web" {
		t.Errorf("labels = %v, want only tier removed", got)
	}
}

func TestSetAndRemoveSameKey(t *testing.T) {
	s := newServer(t)
	_, _, err := s.Run(t, label.NewCmdLabel, "pods", "web", "app=x", "app-")
	if err == nil || !strings.Contains(err.Error(), "can not both modify and remove a label in the same command") {
		t.Fatalf("error = %v, want the modify-and-remove refusal", err)
	}
	if got := labelsOf(t, s, "web")["app"]; got != "web" {
		t.Errorf("app = %q, want unchanged", got)
	}
}

func TestSelectorAndAll(t *testing.T) {
	s := newServer(t)
	out, _, err := s.Run(t, label.NewCmdLabel, "pods", "-l", "app=db", "owner=ops")
	if err != nil {
		t.Fatalf("label -l: %v", err)
	}
	if strings.TrimSpace(out) != "pod/db labeled" {
		t.Errorf("output = %q, want only pod/db", out)
	}
	if _, ok := labelsOf(t, s, "web")["owner"]; ok {
		t.Error("pod web labeled although the selector excludes it")
	}

	out, _, err = s.Run(t, label.NewCmdLabel, "pods", "--all", "zone=a")
	if err != nil {
		t.Fatalf("label --all: %v", err)
	}
	if !strings.Contains(out, "pod/web labeled") || !strings.Contains(out, "pod/db labeled") {
		t.Errorf("output = %q, want both pods labeled", out)
	}
	for _, n := range []string{"web", "db"} {
		if labelsOf(t, s, n)["zone"] != "a" {
			t.Errorf("pod %s lacks zone=a", n)
		}
	}

	if _, _, err := s.Run(t, label.NewCmdLabel, "pods", "--all", "-l", "app=db", "x=y"); err == nil ||
		!strings.Contains(err.Error(), "cannot set --all and --selector at the same time") {
		t.Errorf("--all with -l: error = %v", err)
	}
}

func TestListAndOutput(t *testing.T) {
	s := newServer(t)
	out, _, err := s.Run(t, label.NewCmdLabel, "pods", "web", "--list")
	if err != nil {
		t.Fatalf("label --list: %v", err)
	}
	lines := strings.Fields(out)
	if len(lines) != 2 || !contains(lines, "app=web") || !contains(lines, "tier=frontend") {
		t.Errorf("--list output = %q", out)
	}

	out, _, err = s.Run(t, label.NewCmdLabel, "pods", "web", "env=dev", "-o", "json")
	if err != nil {
		t.Fatalf("label -o json: %v", err)
	}
	var obj struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("-o json output is not JSON: %v\n%s", err, out)
	}
	if obj.Metadata.Name != "web" || obj.Metadata.Labels["env"] != "dev" {
		t.Errorf("-o json object = %+v", obj.Metadata)
	}

	out, _, err = s.Run(t, label.NewCmdLabel, "pods", "web", "env=qa", "--overwrite", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "pod/web" {
		t.Errorf("-o name: out=%q err=%v", out, err)
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
