package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNextBackoff(t *testing.T) {
	if got := NextBackoff(0, time.Second); got != minBackoff {
		t.Errorf("first backoff = %s", got)
	}
	if got := NextBackoff(time.Second, time.Second); got != 2*time.Second {
		t.Errorf("doubling: %s", got)
	}
	if got := NextBackoff(8*time.Second, time.Second); got != maxBackoff {
		t.Errorf("cap: %s", got)
	}
	if got := NextBackoff(8*time.Second, time.Minute); got != minBackoff {
		t.Errorf("a long healthy run should reset the backoff, got %s", got)
	}
}

// A supervised process that exits is started again; Stop ends it for good.
func TestRestartAndStop(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "runs")
	s := &Supervisor{log: slog.New(slog.NewTextHandler(io.Discard, nil)), reaper: newReaper(), stop: make(chan struct{})}
	go s.reaper.run(s.stop)
	logDir = dir
	p := s.Start(context.Background(), Spec{Name: "flaky", Path: "/bin/sh", Args: []string{"-c", "echo run >> " + marker + "; exit 3"}})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && p.Restarts() < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	if p.Restarts() < 2 {
		t.Fatalf("process restarted %d times, want at least 2", p.Restarts())
	}
	long := s.Start(context.Background(), Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}, StopTimeout: 2 * time.Second})
	for i := 0; i < 100 && !long.Running(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !long.Running() {
		t.Fatal("sleeper did not start")
	}
	started := time.Now()
	s.Shutdown()
	if time.Since(started) > 5*time.Second {
		t.Error("shutdown took longer than the stop timeout allows")
	}
	if long.Running() {
		t.Error("sleeper still running after shutdown")
	}
	data, _ := os.ReadFile(marker)
	if len(data) == 0 {
		t.Error("the process never ran")
	}
	if _, err := os.Stat(filepath.Join(dir, "flaky.log")); err != nil {
		t.Errorf("no log file: %v", err)
	}
}
