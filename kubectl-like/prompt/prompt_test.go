package prompt

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestNoTerminal(t *testing.T) {
	var notes bytes.Buffer
	p := OrNoTerminal(nil, &notes)
	ctx := context.Background()
	if p.CanAsk() {
		t.Error("NoTerminal can ask")
	}
	got, err := p.Choose(ctx, Choice{What: "node", Candidates: []string{"n1"}})
	if err != nil || got != "n1" || notes.String() != "Using node n1\n" {
		t.Errorf("one candidate: %q %v, notes %q", got, err, notes.String())
	}
	_, err = p.Choose(ctx, Choice{What: "node", Candidates: []string{"n1", "n2"}, Hint: "name it: berth drain NODE"})
	if err == nil || err.Error() != "there are 2 nodes (n1, n2) and no terminal to pick one at: name it: berth drain NODE" {
		t.Errorf("several candidates: %v", err)
	}
	if _, err := p.Choose(ctx, Choice{What: "service", Hint: "create one"}); err == nil || !strings.Contains(err.Error(), "no service found: create one") {
		t.Errorf("no candidate: %v", err)
	}
}
