package components

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"
)

// CPUProfileDirEnv names a directory where each component started with it
// in its environment writes a CPU profile of its first
// CPUProfileSecondsEnv seconds (default 20) as <component>.pprof. It is
// for finding where a create's CPU goes from the first instruction on:
// the components' /debug/pprof endpoints serve only once they do, and a
// component's start-up is most of its cost in a create. A node image
// with it set is made by `docker build` FROM the node image with one
// ENV line (docs/performance.md, "Session 8"). Profiles are symbolised
// by the runtime, so the stripped binary needs no symbols.
const (
	CPUProfileDirEnv     = "BERTH_CPU_PROFILE_DIR"
	CPUProfileSecondsEnv = "BERTH_CPU_PROFILE_SECONDS"
)

// StartCPUProfile starts the profile CPUProfileDirEnv asks for, if any (as
// component: every component, and the node's supervisor); a
// failure is reported and the component runs unprofiled.
func StartCPUProfile(component string) {
	dir := os.Getenv(CPUProfileDirEnv)
	if dir == "" {
		return
	}
	seconds := 20
	if v, err := strconv.Atoi(os.Getenv(CPUProfileSecondsEnv)); err == nil && v > 0 {
		seconds = v
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "berth-node: CPU profile: %v\n", err)
		return
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", component, os.Getpid())))
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-node: CPU profile: %v\n", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "berth-node: CPU profile: %v\n", err)
		f.Close()
		return
	}
	time.AfterFunc(time.Duration(seconds)*time.Second, func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}
