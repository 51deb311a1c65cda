package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// Steps is a progress.Reporter for terminals. Every step in flight has a
// line with a spinner and its elapsed time at the bottom of the output;
// when a step ends its line is replaced by a tick (or a cross with the
// reason) and the time it took, printed above the steps still running.
// Steps may overlap: a ticker redraws the lines in flight.
type Steps struct {
	W     io.Writer
	Theme *Theme
	// Interval between redraws (default 100ms).
	Interval time.Duration
	// Width truncates lines (default: the terminal's width, else none).
	Width int
	// Now is the clock (for tests).
	Now func() time.Time

	mu      sync.Mutex
	running []*step
	drawn   int // lines of in-flight steps currently on screen
	frame   int
	stop    chan struct{}
	stopped chan struct{}
}

type step struct {
	name  string
	start time.Time
}

var _ interface{ Step(string) func(error) } = (*Steps)(nil)

func (s *Steps) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Step implements progress.Reporter.
func (s *Steps) Step(name string) func(error) {
	st := &step{name: name, start: s.now()}
	s.mu.Lock()
	s.clearLocked()
	s.running = append(s.running, st)
	s.drawLocked()
	if s.stop == nil {
		s.stop, s.stopped = make(chan struct{}), make(chan struct{})
		go s.tick(s.stop, s.stopped)
	}
	s.mu.Unlock()

	var once sync.Once
	return func(err error) {
		once.Do(func() { s.finish(st, err) })
	}
}

func (s *Steps) finish(st *step, err error) {
	s.mu.Lock()
	s.clearLocked()
	for i, r := range s.running {
		if r == st {
			s.running = append(s.running[:i], s.running[i+1:]...)
			break
		}
	}
	took := s.Theme.Dim.Render(fmt.Sprintf("(%s)", FormatDuration(s.now().Sub(st.start))))
	if err != nil {
		reason := strings.TrimSpace(err.Error())
		fmt.Fprintf(s.W, " %s %s %s\n   %s\n", s.Theme.Fail.Render(SymFail), st.name, took,
			s.Theme.Fail.Render(strings.ReplaceAll(reason, "\n", "\n   ")))
	} else {
		fmt.Fprintf(s.W, " %s %s %s\n", s.Theme.OK.Render(SymOK), st.name, took)
	}
	s.drawLocked()
	var stopped chan struct{}
	if len(s.running) == 0 && s.stop != nil {
		close(s.stop)
		stopped = s.stopped
		s.stop, s.stopped = nil, nil
	}
	s.mu.Unlock()
	if stopped != nil {
		<-stopped
	}
}

func (s *Steps) tick(stop, stopped chan struct{}) {
	defer close(stopped)
	interval := s.Interval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.frame++
			s.clearLocked()
			s.drawLocked()
			s.mu.Unlock()
		}
	}
}

// clearLocked moves the cursor up over the in-flight lines and erases them.
func (s *Steps) clearLocked() {
	if s.drawn > 0 {
		fmt.Fprintf(s.W, "\x1b[%dF\x1b[J", s.drawn)
		s.drawn = 0
	}
}

// drawLocked prints one line per step in flight.
func (s *Steps) drawLocked() {
	width := s.Width
	if width == 0 {
		width = terminalWidth(s.W)
	}
	spin := s.Theme.Running.Render(SpinnerFrames[s.frame%len(SpinnerFrames)])
	var b strings.Builder
	for _, r := range s.running {
		line := fmt.Sprintf(" %s %s %s", spin, r.name, s.Theme.Dim.Render(FormatDuration(s.now().Sub(r.start))))
		if width > 1 {
			line = ansi.Truncate(line, width-1, "…")
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	fmt.Fprint(s.W, b.String())
	s.drawn = len(s.running)
}

// FormatDuration renders a duration for people: 850ms, 4.2s, 1m05s.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
}

func ansiTruncate(s string, width int) string { return ansi.Truncate(s, width, "…") }
