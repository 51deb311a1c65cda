package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// ErrCanceled is returned when a person cancels a picker or prompt.
var ErrCanceled = errors.New("cancelled")

// ConfirmModel asks a yes/no question: y answers yes; n, Enter, Esc and
// Ctrl-C answer no (the default).
type ConfirmModel struct {
	Question string
	Details  []string
	Theme    *Theme

	Answered bool
	Yes      bool
}

// NewConfirm returns a yes/no question with details shown above it.
func NewConfirm(question string, details []string, theme *Theme) ConfirmModel {
	if theme == nil {
		theme = NewTheme(false)
	}
	return ConfirmModel{Question: question, Details: details, Theme: theme}
}

// Init implements tea.Model.
func (m ConfirmModel) Init() tea.Cmd { return nil }

// Update implements tea.Model.
func (m ConfirmModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	key, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch key.Type {
	case tea.KeyCtrlC, tea.KeyEsc, tea.KeyEnter:
		m.Answered, m.Yes = true, false
		return m, tea.Quit
	case tea.KeyRunes:
		switch strings.ToLower(string(key.Runes)) {
		case "y":
			m.Answered, m.Yes = true, true
			return m, tea.Quit
		case "n":
			m.Answered, m.Yes = true, false
			return m, tea.Quit
		}
	}
	return m, nil
}

// View implements tea.Model.
func (m ConfirmModel) View() string {
	t := m.Theme
	var b strings.Builder
	for _, d := range m.Details {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	answer := t.Dim.Render("[y/N]")
	if m.Answered {
		answer = "no"
		if m.Yes {
			answer = "yes"
		}
	}
	fmt.Fprintf(&b, "%s %s %s\n", t.Accent.Render("?"), t.Bold.Render(m.Question), answer)
	return b.String()
}

// Prompt is how commands ask a person something. Without a person there
// (Interactive false) it never waits for input: Choose fails with the
// candidates listed and Confirm reports that nobody could answer.
type Prompt struct {
	In io.Reader
	// Out is where pickers and questions are drawn (the terminal).
	Out io.Writer
	// Notes receives "Using X" (stderr, so stdout stays data; Out if nil).
	Notes       io.Writer
	Interactive bool
	Theme       *Theme
	// Run runs a bubbletea model to its end; RunProgram by default
	// (tests replace it).
	Run func(ctx context.Context, m tea.Model) (tea.Model, error)
}

// NewPrompt returns a Prompt over a command's streams: interactive when
// stdin and stdout are terminals and CI is not set; it draws on errOut
// when that is a terminal, else on out.
func NewPrompt(in io.Reader, out, errOut io.Writer, noColor bool) *Prompt {
	draw := errOut
	if !IsTerminal(errOut) {
		draw = out
	}
	return &Prompt{
		In:          in,
		Out:         draw,
		Notes:       errOut,
		Interactive: Interactive(in, out),
		Theme:       NewTheme(ColorEnabled(draw, noColor)),
	}
}

// RunProgram runs m as a small inline bubbletea program on in and out.
func RunProgram(ctx context.Context, in io.Reader, out io.Writer, m tea.Model) (tea.Model, error) {
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out), tea.WithContext(ctx), tea.WithoutSignalHandler())
	final, err := p.Run()
	if err != nil {
		if ctx.Err() != nil {
			return final, ctx.Err()
		}
		return final, err
	}
	return final, nil
}

func (p *Prompt) run(ctx context.Context, m tea.Model) (tea.Model, error) {
	if p.Run != nil {
		return p.Run(ctx, m)
	}
	return RunProgram(ctx, p.In, p.Out, m)
}

func (p *Prompt) notes() io.Writer {
	if p.Notes != nil {
		return p.Notes
	}
	return p.Out
}

func (p *Prompt) theme() *Theme {
	if p.Theme == nil {
		return NewTheme(false)
	}
	return p.Theme
}

// NoCandidatesError is returned by Choose when there is nothing to choose.
type NoCandidatesError struct{ What, Hint string }

func (e *NoCandidatesError) Error() string {
	msg := "no " + e.What + " found"
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// AmbiguousError is returned by Choose without a person to ask.
type AmbiguousError struct {
	What       string
	Candidates []string
	Hint       string
}

func (e *AmbiguousError) Error() string {
	msg := fmt.Sprintf("there are %d %ss (%s) and no terminal to pick one at", len(e.Candidates), e.What, strings.Join(e.Candidates, ", "))
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// Choice describes what Choose picks among.
type Choice struct {
	// What is the kind of thing, singular: "cluster", "node".
	What       string
	Candidates []string
	// Hint says how to name one explicitly, e.g. "pass --name NAME".
	Hint string
	// Quiet suppresses the "Using X" note for a single candidate.
	Quiet bool
}

// Choose picks one of c.Candidates: the only one (named on Out), the one
// a person picks at a terminal, or an error listing them otherwise.
func (p *Prompt) Choose(ctx context.Context, c Choice) (string, error) {
	switch len(c.Candidates) {
	case 0:
		return "", &NoCandidatesError{What: c.What, Hint: c.Hint}
	case 1:
		if !c.Quiet {
			fmt.Fprintf(p.notes(), "Using %s %s\n", c.What, p.theme().Bold.Render(c.Candidates[0]))
		}
		return c.Candidates[0], nil
	}
	if !p.Interactive {
		return "", &AmbiguousError{What: c.What, Candidates: c.Candidates, Hint: c.Hint}
	}
	final, err := p.run(ctx, NewPicker("Which "+c.What+"?", c.Candidates, p.theme()))
	if err != nil {
		return "", fmt.Errorf("picking a %s: %w", c.What, err)
	}
	m, ok := final.(PickerModel)
	if !ok || m.Canceled || m.Chosen == "" {
		return "", fmt.Errorf("no %s picked (%w): %s", c.What, ErrCanceled, c.Hint)
	}
	if !c.Quiet {
		fmt.Fprintf(p.notes(), "Using %s %s\n", c.What, p.theme().Bold.Render(m.Chosen))
	}
	return m.Chosen, nil
}

// Confirm asks question with details above it and reports the answer.
// Without a person there it returns false and no error, without waiting:
// the caller decides whether to act anyway.
func (p *Prompt) Confirm(ctx context.Context, question string, details []string) (bool, error) {
	if !p.Interactive {
		return false, nil
	}
	final, err := p.run(ctx, NewConfirm(question, details, p.theme()))
	if err != nil {
		return false, fmt.Errorf("asking %q: %w", question, err)
	}
	m, ok := final.(ConfirmModel)
	return ok && m.Yes, nil
}

// RunFullscreen runs m on the alternate screen (for live views).
func RunFullscreen(ctx context.Context, in io.Reader, out io.Writer, m tea.Model) (tea.Model, error) {
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out), tea.WithContext(ctx), tea.WithAltScreen())
	final, err := p.Run()
	if err != nil && ctx.Err() != nil {
		return final, ctx.Err()
	}
	return final, err
}
