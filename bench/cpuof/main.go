// Command cpuof runs a command and prints where the machine's CPU time
// went while it ran: the whole machine's busy seconds and each berth
// process group's share (the nodes' components, their containerd and
// shims, pods, the host's Docker). bench/pods.sh and bench/load.sh wrap
// their timed step in it when CPU=1.
//
//	go run ./bench/cpuof -- sh -c 'berth load image big:1'
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/berth-dev/berth/bench/internal/proccpu"
)

func main() {
	out := flag.String("o", "", "append the breakdown to this file instead of standard error")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: cpuof [-o FILE] -- COMMAND [ARG...]")
		os.Exit(2)
	}
	busy0, procs0 := proccpu.Busy(), proccpu.Take()
	start := time.Now()
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	runErr := cmd.Run()
	wall := time.Since(start)
	busy := proccpu.Busy() - busy0
	groups := map[string][]float64{}
	attributed := 0.0
	for g, v := range proccpu.Since(procs0) {
		groups[g] = []float64{v}
		attributed += v
	}
	if cmd.ProcessState != nil {
		self := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		groups["the command itself"] = []float64{self}
		attributed += self
	}
	groups[proccpu.Unattributed] = []float64{busy - attributed}
	w := os.Stderr
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpuof:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	proccpu.Print(w, fmt.Sprintf("CPU while %q ran: %.2f s busy in %.2f s wall, by process:", flag.Args(), busy, wall.Seconds()), groups)
	if ee, ok := runErr.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	} else if runErr != nil {
		fmt.Fprintln(os.Stderr, "cpuof:", runErr)
		os.Exit(1)
	}
}
