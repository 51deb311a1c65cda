// Package ui is everything berth shows people: the colour theme, the
// step display for long operations, pickers, confirmations, the live
// status view, and the decision whether a terminal is there at all.
// Commands print data themselves; decoration comes from here so it looks
// the same everywhere and disappears in pipes.
package ui

import (
	"io"
	"os"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"golang.org/x/term"

	"github.com/berth-dev/berth/cluster/progress"
	// Before Bubble Tea's init: see the package's doc.
	_ "github.com/berth-dev/berth/cmd/berth/ui/internal/noquery"
)

// Symbols used everywhere; they are the same with and without colour.
const (
	SymOK      = "✓"
	SymFail    = "✗"
	SymWarn    = "!"
	SymPending = "•"
	SymPointer = "›"
)

// SpinnerFrames are the frames of the running-step spinner.
var SpinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Theme holds the styles of everything decorated.
type Theme struct {
	OK, Fail, Warn, Running, Dim, Bold, Accent, Selected lipgloss.Style
	Color                                                bool
}

// NewTheme returns the theme; with color false every style is plain.
// Styles render for a colour terminal whenever color is true (whichever
// stream they end up on: the caller decided that colour is wanted).
func NewTheme(color bool) *Theme {
	r := lipgloss.NewRenderer(io.Discard)
	if !color {
		r.SetColorProfile(termenv.Ascii)
		p := r.NewStyle()
		return &Theme{OK: p, Fail: p, Warn: p, Running: p, Dim: p, Bold: p, Accent: p, Selected: p}
	}
	r.SetColorProfile(termenv.ANSI256)
	r.SetHasDarkBackground(true)
	return &Theme{
		OK:       r.NewStyle().Foreground(lipgloss.Color("2")),
		Fail:     r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		Warn:     r.NewStyle().Foreground(lipgloss.Color("3")),
		Running:  r.NewStyle().Foreground(lipgloss.Color("6")),
		Dim:      r.NewStyle().Faint(true),
		Bold:     r.NewStyle().Bold(true),
		Accent:   r.NewStyle().Foreground(lipgloss.Color("5")).Bold(true),
		Selected: r.NewStyle().Foreground(lipgloss.Color("6")).Bold(true),
		Color:    true,
	}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// InCI reports whether CI is set to true or 1.
func InCI() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

// Interactive reports whether a person can be asked questions: stdin and
// stdout are terminals and CI is not set.
func Interactive(in io.Reader, out io.Writer) bool {
	if InCI() {
		return false
	}
	f, ok := in.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && IsTerminal(out)
}

// ColorEnabled decides whether to use colour on w.
func ColorEnabled(w io.Writer, noColor bool) bool {
	if noColor || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return IsTerminal(w)
}

// DisableColor makes every later ColorEnabled false in this process
// (--no-color), including in packages that only see NO_COLOR.
func DisableColor() { _ = os.Setenv("NO_COLOR", "1") }

// Reporter picks the step display for w: live at a terminal unless
// quiet, plain timestamped lines otherwise.
func Reporter(w io.Writer, theme *Theme, quiet bool) progress.Reporter {
	if quiet {
		return progress.Discard{}
	}
	if IsTerminal(w) && os.Getenv("TERM") != "dumb" {
		return &Steps{W: w, Theme: theme}
	}
	return &progress.Plain{W: w}
}

// terminalWidth is the width of w if it is a terminal, else 0.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}
