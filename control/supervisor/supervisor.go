// Package supervisor is the process manager of a node container's PID 1:
// it reaps orphans, runs each component as its own process with restarts
// on exit, and stops them in the reverse order of their start.
package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// Supervisor owns the reaper and every supervised process.
type Supervisor struct {
	log    *slog.Logger
	reaper *reaper
	stop   chan struct{}

	mu    sync.Mutex
	order []*Process
}

// New starts the child reaper. Call Shutdown to stop everything.
func New(log *slog.Logger) (*Supervisor, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", logDir, err)
	}
	s := &Supervisor{log: log, reaper: newReaper(), stop: make(chan struct{})}
	go s.reaper.run(s.stop)
	return s, nil
}

// Start runs spec under supervision and returns its handle.
func (s *Supervisor) Start(ctx context.Context, spec Spec) *Process {
	p := &Process{spec: spec, reaper: s.reaper, log: s.log}
	s.mu.Lock()
	s.order = append(s.order, p)
	s.mu.Unlock()
	p.start(ctx)
	return p
}

// Run runs a one-off command to completion (not restarted) and returns
// its combined output. Used for helpers such as image imports.
func (s *Supervisor) Run(ctx context.Context, path string, args ...string) ([]byte, error) {
	return s.runOneOff(ctx, path, args, nil)
}

// RunInput is Run with stdin.
func (s *Supervisor) RunInput(ctx context.Context, stdin io.Reader, path string, args ...string) ([]byte, error) {
	return s.runOneOff(ctx, path, args, stdin)
}

// Shutdown stops every process, last started first, then the reaper.
func (s *Supervisor) Shutdown() {
	s.mu.Lock()
	order := append([]*Process(nil), s.order...)
	s.mu.Unlock()
	for i := len(order) - 1; i >= 0; i-- {
		s.log.Info("stopping component", "component", order[i].spec.Name)
		order[i].Stop()
	}
	close(s.stop)
}
