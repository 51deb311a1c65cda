package commands

import (
	"context"

	"github.com/berth-dev/berth/cmd/berth/ui"
	"github.com/berth-dev/berth/kubectl-like/prompt"
)

// workloadPrompt lets the kubectl-style commands ask a person through
// berth's terminal UI: the picker when a node or service is not named, the
// confirmation before a drain. It builds the ui.Prompt at each use, once
// the flags (--no-color, --quiet) are parsed.
type workloadPrompt struct{ g *Globals }

var _ prompt.Prompter = workloadPrompt{}

// Choose implements prompt.Chooser.
func (w workloadPrompt) Choose(ctx context.Context, c prompt.Choice) (string, error) {
	return w.g.Prompt().Choose(ctx, ui.Choice{What: c.What, Candidates: c.Candidates, Hint: c.Hint, Quiet: w.g.Quiet})
}

// CanAsk implements prompt.Confirmer.
func (w workloadPrompt) CanAsk() bool { return w.g.Prompt().Interactive }

// Confirm implements prompt.Confirmer.
func (w workloadPrompt) Confirm(ctx context.Context, question string, details []string) (bool, error) {
	return w.g.Prompt().Confirm(ctx, question, details)
}
