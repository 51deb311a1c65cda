package commands

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/kubectl-like/prompt"
)

// Without a terminal the workload commands get berth's own answers: the
// only candidate named on stderr (not with --quiet), several refused with
// the list, and nobody to confirm with.
func TestWorkloadPromptWithoutTerminal(t *testing.T) {
	var out, errOut bytes.Buffer
	g := &Globals{Streams: Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}}
	p := workloadPrompt{g}
	ctx := context.Background()
	if p.CanAsk() {
		t.Error("CanAsk without a terminal")
	}
	got, err := p.Choose(ctx, prompt.Choice{What: "node", Candidates: []string{"dev-worker"}, Hint: "name it: berth drain NODE"})
	if err != nil || got != "dev-worker" || !strings.Contains(errOut.String(), "Using node dev-worker") || out.Len() != 0 {
		t.Errorf("Choose = %q, %v; stdout %q, stderr %q", got, err, out.String(), errOut.String())
	}
	_, err = p.Choose(ctx, prompt.Choice{What: "service", Candidates: []string{"svc-a", "svc-b"}, Hint: "name it"})
	if err == nil || !strings.Contains(err.Error(), "svc-a, svc-b") || !strings.Contains(err.Error(), "no terminal") {
		t.Errorf("Choose among several = %v", err)
	}

	errOut.Reset()
	g.Quiet = true
	if _, err := p.Choose(ctx, prompt.Choice{What: "node", Candidates: []string{"dev-worker"}}); err != nil || errOut.Len() != 0 {
		t.Errorf("--quiet: %v, stderr %q", err, errOut.String())
	}
}
