// Package ui is everything berth shows people: the colour theme, the
// step display for long operations, and the decision whether a terminal
// is there at all. Commands print data themselves; decoration comes from
// here so it looks the same everywhere and disappears in pipes.
package ui

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/charmbracelet/lipgloss"
	"golang.org/x/term"

	"github.com/berth-dev/berth/cluster/progress"
)

// Theme holds the styles of everything decorated.
type Theme struct {
	OK, Fail, Running, Dim, Bold, Accent lipgloss.Style
	Color                                bool
}

// NewTheme returns the theme; with color false every style is plain.
func NewTheme(color bool) *Theme {
	if !color {
		p := lipgloss.NewStyle()
		return &Theme{OK: p, Fail: p, Running: p, Dim: p, Bold: p, Accent: p}
	}
	return &Theme{
		OK:      lipgloss.NewStyle().Foreground(lipgloss.Color("2")),
		Fail:    lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		Running: lipgloss.NewStyle().Foreground(lipgloss.Color("6")),
		Dim:     lipgloss.NewStyle().Faint(true),
		Bold:    lipgloss.NewStyle().Bold(true),
		Accent:  lipgloss.NewStyle().Foreground(lipgloss.Color("5")).Bold(true),
		Color:   true,
	}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Interactive reports whether a person can be asked questions: stdin and
// stdout are terminals and CI is not set.
func Interactive(in io.Reader, out io.Writer) bool {
	if os.Getenv("CI") == "true" || os.Getenv("CI") == "1" {
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

// Steps is a progress.Reporter for terminals: a running line per step,
// replaced by a tick (or cross) with its elapsed time when it ends.
type Steps struct {
	W     io.Writer
	Theme *Theme
	mu    sync.Mutex
}

// Step implements progress.Reporter.
func (s *Steps) Step(name string) func(error) {
	start := time.Now()
	s.mu.Lock()
	fmt.Fprintf(s.W, " %s %s\n", s.Theme.Running.Render("•"), name)
	s.mu.Unlock()
	return func(err error) {
		took := time.Since(start).Round(10 * time.Millisecond)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			fmt.Fprintf(s.W, " %s %s %s\n", s.Theme.Fail.Render("✗"), name, s.Theme.Dim.Render(fmt.Sprintf("(%s)", took)))
			return
		}
		fmt.Fprintf(s.W, " %s %s %s\n", s.Theme.OK.Render("✓"), name, s.Theme.Dim.Render(fmt.Sprintf("(%s)", took)))
	}
}

// Reporter picks the step display for w: decorated at a terminal unless
// quiet, plain timestamped lines otherwise.
func Reporter(w io.Writer, theme *Theme, quiet bool) progress.Reporter {
	if quiet {
		return progress.Discard{}
	}
	if IsTerminal(w) {
		return &Steps{W: w, Theme: theme}
	}
	return &progress.Plain{W: w}
}
