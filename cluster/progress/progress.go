// Package progress is how long operations report their steps. The CLI
// supplies a live display at a terminal and plain log lines elsewhere;
// library code only calls Step.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Reporter receives the steps of an operation.
type Reporter interface {
	// Step announces that a step began; calling the returned function
	// ends it, with the error it failed with (or nil).
	Step(name string) (done func(err error))
}

// Discard ignores every step.
type Discard struct{}

// Step implements Reporter.
func (Discard) Step(string) func(error) { return func(error) {} }

// Plain writes one line per step start and end, with timestamps and no
// escape codes: for logs, pipes and CI.
type Plain struct {
	W   io.Writer
	Now func() time.Time
	mu  sync.Mutex
}

// Step implements Reporter.
func (p *Plain) Step(name string) func(error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	start := now()
	p.printf("%s  ... %s\n", start.Format("15:04:05"), name)
	return func(err error) {
		end := now()
		took := end.Sub(start).Round(10 * time.Millisecond)
		if err != nil {
			p.printf("%s FAIL %s (%s): %v\n", end.Format("15:04:05"), name, took, err)
			return
		}
		p.printf("%s  ok  %s (%s)\n", end.Format("15:04:05"), name, took)
	}
}

func (p *Plain) printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.W, format, a...)
}

// Run runs fn as a step of r.
func Run(r Reporter, name string, fn func() error) error {
	done := r.Step(name)
	err := fn()
	done(err)
	return err
}
