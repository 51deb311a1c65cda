// Package prompt holds what the workload commands need from whoever runs
// them to ask a person something: a Chooser when a required argument is
// missing and a Confirmer before something destructive. berth's CLI
// implements both with its terminal UI; a library caller or a test passes
// its own, or NoTerminal.
//
// The commands never draw anything themselves: keeping the terminal UI on
// the CLI's side keeps kubectl-like free of any dependency on cmd/.
package prompt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Choice describes what Choose picks among.
type Choice struct {
	// What is the kind of thing, singular: "node", "service".
	What       string
	Candidates []string
	// Hint says how to name one explicitly, e.g. "name it: berth drain NODE".
	Hint string
}

// Chooser picks one of several candidates. With one candidate it returns it
// (and may say so); without a person to ask it fails, listing them.
type Chooser interface {
	Choose(ctx context.Context, c Choice) (string, error)
}

// Confirmer asks a yes/no question before something destructive.
type Confirmer interface {
	// CanAsk reports whether a person is there to answer. Commands
	// decide by themselves what to do when nobody is.
	CanAsk() bool
	// Confirm asks question, with details shown above it, and reports
	// the answer. It is only called when CanAsk is true.
	Confirm(ctx context.Context, question string, details []string) (bool, error)
}

// Prompter is both.
type Prompter interface {
	Chooser
	Confirmer
}

// NoTerminal is the Prompter for when nobody is at a terminal: it takes
// the only candidate, naming it on Notes, fails when there are several, and
// never asks.
type NoTerminal struct {
	// Notes receives "Using node X" (stderr, so stdout stays data); nil
	// discards it.
	Notes io.Writer
}

// Choose implements Chooser.
func (n NoTerminal) Choose(_ context.Context, c Choice) (string, error) {
	hint := ""
	if c.Hint != "" {
		hint = ": " + c.Hint
	}
	switch len(c.Candidates) {
	case 0:
		return "", fmt.Errorf("no %s found%s", c.What, hint)
	case 1:
		if n.Notes != nil {
			fmt.Fprintf(n.Notes, "Using %s %s\n", c.What, c.Candidates[0])
		}
		return c.Candidates[0], nil
	}
	return "", fmt.Errorf("there are %d %ss (%s) and no terminal to pick one at%s",
		len(c.Candidates), c.What, strings.Join(c.Candidates, ", "), hint)
}

// CanAsk implements Confirmer: nobody is there.
func (NoTerminal) CanAsk() bool { return false }

// Confirm implements Confirmer; it is never meant to be called.
func (NoTerminal) Confirm(context.Context, string, []string) (bool, error) {
	return false, errors.New("no terminal to ask at")
}

// OrNoTerminal returns p, or NoTerminal writing notes to notes when p is nil.
func OrNoTerminal(p Prompter, notes io.Writer) Prompter {
	if p == nil {
		return NoTerminal{Notes: notes}
	}
	return p
}
