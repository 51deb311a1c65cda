package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// LogDir is where every supervised process writes its output.
const LogDir = "/var/log/berth"

// logDir is LogDir, changeable by tests.
var logDir = LogDir

// Spec describes one supervised process.
type Spec struct {
	// Name is the component name; the log file is LogDir/<Name>.log.
	Name string
	// Path and Args are the program and its arguments (without argv[0]).
	Path string
	Args []string
	// Env is added to the supervisor's environment.
	Env []string
	// StopTimeout is how long to wait after SIGTERM before SIGKILL.
	StopTimeout time.Duration
}

// Process is a supervised process: started, restarted with exponential
// backoff whenever it exits, and stopped on request.
type Process struct {
	spec   Spec
	reaper *reaper
	log    *slog.Logger

	mu       sync.Mutex
	pid      int
	restarts int
	stopping bool
	done     chan struct{}
	cancel   context.CancelFunc
	// parent is the context the process was first started with; a
	// process stopped with Stop can be started again under it (Resume).
	parent context.Context
}

// Backoff bounds for restarts.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
	// A process that ran this long before exiting is considered healthy
	// again, and its backoff starts over.
	healthyRun = 30 * time.Second
)

// NextBackoff returns the delay before the next restart, given the last
// delay and how long the process ran.
func NextBackoff(last, ran time.Duration) time.Duration {
	if ran >= healthyRun || last <= 0 {
		return minBackoff
	}
	next := last * 2
	if next > maxBackoff {
		next = maxBackoff
	}
	return next
}

func (p *Process) start(ctx context.Context) {
	p.parent = ctx
	p.mu.Lock()
	p.stopping = false
	p.mu.Unlock()
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go p.loop(ctx)
}

func (p *Process) loop(ctx context.Context) {
	defer close(p.done)
	backoff := time.Duration(0)
	for {
		began := time.Now()
		status, err := p.runOnce()
		ran := time.Since(began)
		if ctx.Err() != nil {
			return
		}
		backoff = NextBackoff(backoff, ran)
		p.mu.Lock()
		p.restarts++
		p.mu.Unlock()
		if err != nil {
			p.log.Error("component failed to start", "component", p.spec.Name, "err", err, "retryIn", backoff)
		} else {
			p.log.Warn("component exited", "component", p.spec.Name, "status", describe(status), "ran", ran.Round(time.Millisecond), "restartIn", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit code %d", ws.ExitStatus())
}

func (p *Process) runOnce() (syscall.WaitStatus, error) {
	logFile, err := os.OpenFile(filepath.Join(logDir, p.spec.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("opening log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Own process group, so a stop reaches the component's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := p.reaper.watch(cmd.Process.Pid)
	p.mu.Lock()
	p.pid = cmd.Process.Pid
	p.mu.Unlock()
	p.log.Info("component started", "component", p.spec.Name, "pid", cmd.Process.Pid)
	status := <-exited
	p.mu.Lock()
	p.pid = 0
	p.mu.Unlock()
	return status, nil
}

// Stop ends the restart loop, sends SIGTERM and, after the stop timeout,
// SIGKILL, and waits for the process to be gone.
func (p *Process) Stop() {
	timeout := p.spec.StopTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	p.StopWithin(timeout)
}

// StopWithin is Stop with grace as the time between SIGTERM and SIGKILL;
// with no grace the process is killed at once.
func (p *Process) StopWithin(grace time.Duration) {
	p.mu.Lock()
	p.stopping = true
	pid := p.pid
	p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
	sig := syscall.SIGTERM
	if grace <= 0 {
		sig = syscall.SIGKILL
	}
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		if pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		<-p.done
	}
}

// Resume starts a process stopped with Stop again, with a fresh backoff.
// It does nothing to a process that is not stopped.
func (p *Process) Resume() {
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	if !stopping || p.parent.Err() != nil {
		return
	}
	p.start(p.parent)
}

// Restarts reports how often the process was restarted.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Running reports whether the process is running.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid > 0
}
