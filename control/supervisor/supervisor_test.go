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

// A hold stops a component until its client lets go, then starts it
// again; a client that just goes away releases it too.
func TestHold(t *testing.T) {
	dir := t.TempDir()
	logDir = dir
	s := &Supervisor{log: slog.New(slog.NewTextHandler(io.Discard, nil)), reaper: newReaper(), stop: make(chan struct{})}
	go s.reaper.run(s.stop)
	defer s.Shutdown()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := s.Start(ctx, Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}, StopTimeout: time.Second})
	waitRunning := func(want bool) {
		t.Helper()
		for i := 0; i < 200 && p.Running() != want; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if p.Running() != want {
			t.Fatalf("running = %v, want %v", p.Running(), want)
		}
	}
	waitRunning(true)
	sock := filepath.Join(dir, "control.sock")
	go func() { _ = s.Serve(ctx, sock) }()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Hold(ctx, sock, -1, "nonexistent"); err == nil {
		t.Error("holding an unknown component succeeded")
	}
	release, err := Hold(ctx, sock, -1, "sleeper")
	if err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("held component still running")
	}
	// Nested: a second hold keeps it stopped after the first ends.
	release2, err := Hold(ctx, sock, 0, "sleeper")
	if err != nil {
		t.Fatal(err)
	}
	release()
	time.Sleep(300 * time.Millisecond)
	if p.Running() {
		t.Fatal("component started while a hold remained")
	}
	release2()
	waitRunning(true)
}
