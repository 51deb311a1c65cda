package supervisor

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper is PID 1's child collector. As init, berth-node inherits every
// orphaned process in the container and must wait for them, or they stay
// zombies. A single loop calls wait4(-1) for all children; exits of the
// processes the supervisor started are handed to whoever registered the
// pid, the rest are simply reaped.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	// early keeps exits that arrived before their pid was registered
	// (a child that dies between fork and registration).
	early map[int]syscall.WaitStatus
}

func newReaper() *reaper {
	return &reaper{
		waiters: map[int]chan syscall.WaitStatus{},
		early:   map[int]syscall.WaitStatus{},
	}
}

// run reaps children until stop is closed.
func (r *reaper) run(stop <-chan struct{}) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	for {
		r.reapAll()
		select {
		case <-stop:
			return
		case <-sigs:
		}
	}
}

func (r *reaper) reapAll() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			r.forget()
			return
		}
		r.deliver(pid, status)
	}
}

func (r *reaper) deliver(pid int, status syscall.WaitStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- status
		return
	}
	r.early[pid] = status
}

// watch returns a channel that receives pid's exit status. It must be
// called right after the process is started.
func (r *reaper) watch(pid int) <-chan syscall.WaitStatus {
	ch := make(chan syscall.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if status, ok := r.early[pid]; ok {
		delete(r.early, pid)
		ch <- status
		return ch
	}
	r.waiters[pid] = ch
	return ch
}

// forget drops early exits of pids nobody will ever watch, so the map
// does not grow with every orphan reaped.
func (r *reaper) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.early) > 1024 {
		r.early = map[int]syscall.WaitStatus{}
	}
}
