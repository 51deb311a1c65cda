package kubectllike_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	kubectllike "github.com/berth-dev/berth/kubectl-like"
	"github.com/berth-dev/berth/kubectl-like/internal/fakeapi"
)

// newRoot wires the commands the way berth's root command is expected to:
// connection flags on the root's persistent flags, context preset when the
// user gave none.
func newRoot(s *fakeapi.Server) (*cobra.Command, *strings.Builder, *strings.Builder) {
	flags := genericclioptions.NewConfigFlags(true)
	cache := s.Kubeconfig + ".cache"
	flags.CacheDir = &cache
	var out, errOut strings.Builder
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	root := &cobra.Command{Use: "berth", SilenceErrors: true, SilenceUsage: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			if *flags.Context == "" {
				*flags.Context = "berth-test"
			}
		},
	}
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(kubectllike.NewCommands(flags, streams, nil)...)
	return root, &out, &errOut
}

func TestNewCommands(t *testing.T) {
	cmds := kubectllike.NewCommands(genericclioptions.NewConfigFlags(true), genericiooptions.NewTestIOStreamsDiscard(), nil)
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name())
		if c.RunE == nil || c.Run != nil {
			t.Errorf("%s: must use RunE only", c.Name())
		}
	}
	if got := strings.Join(names, " "); got != "label scale expose drain cordon uncordon service kubectl" {
		t.Errorf("commands = %q", got)
	}
}

func TestCommandsUseRootFlags(t *testing.T) {
	s := fakeapi.New(t,
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: map[string]string{"app": "web"}}},
	)
	root, out, _ := newRoot(s)
	root.SetArgs([]string{"--kubeconfig", s.Kubeconfig, "-n", "apps", "label", "pod", "web", "--overwrite", "app=api"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("berth -n apps label: %v", err)
	}
	if strings.TrimSpace(out.String()) != "pod/web labeled" {
		t.Errorf("output = %q", out.String())
	}
	p, _ := s.Clientset.CoreV1().Pods("apps").Get(context.Background(), "web", metav1.GetOptions{})
	if p.Labels["app"] != "api" {
		t.Errorf("pod apps/web labels = %v", p.Labels)
	}
	d, _ := s.Clientset.CoreV1().Pods("default").Get(context.Background(), "web", metav1.GetOptions{})
	if len(d.Labels) != 0 {
		t.Errorf("pod default/web was labeled instead: %v", d.Labels)
	}

	// An explicit --context wins over the preset one.
	root, _, _ = newRoot(s)
	root.SetArgs([]string{"--kubeconfig", s.Kubeconfig, "--context", "other", "--request-timeout", "2s", "label", "pod", "web", "x=y"})
	if err := root.ExecuteContext(context.Background()); err == nil {
		t.Error("--context other (unreachable) was ignored")
	}

	// Errors come back as values with kubectl's exit code.
	root, _, _ = newRoot(s)
	root.SetArgs([]string{"--kubeconfig", s.Kubeconfig, "label", "pod", "missing", "x=y"})
	err := root.ExecuteContext(context.Background())
	var exit *kubectllike.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(err.Error(), `pods "missing" not found`) {
		t.Errorf("label of a missing pod: %v (%T)", err, err)
	}
}
