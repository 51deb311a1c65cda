// Package proccpu tells where a machine's CPU time went while something
// ran: the whole machine's busy seconds (/proc/stat) and each berth
// process's share (/proc/<pid>/stat), grouped by component — the nodes'
// Kubernetes components, their containerd and shims, pods, the host's
// Docker. The benchmarks under bench/ use it to say which process a
// figure is made of.
//
// There is no library for this small a /proc reading; prometheus procfs
// would add a dependency for two fields.
package proccpu

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// procCPU is one process's CPU seconds: its own (utime+stime) plus what
// the children it has reaped spent (cutime+cstime), so short-lived
// helpers (runc, CNI plugins, ctr, docker exec's shells) count towards
// whoever started them.
type procCPU struct {
	start   string // starttime: tells a reused PID apart
	group   string
	seconds float64
}

// The components berth-node runs as `berth-node <name>` processes.
var nodeComponents = map[string]bool{
	"etcd": true, "kube-apiserver": true, "kube-controller-manager": true,
	"kube-scheduler": true, "kubelet": true, "kube-proxy": true,
}

// Snapshot is every process's CPU seconds at one moment, by PID.
type Snapshot map[int]procCPU

// Take reads every process on the host (node containers share the host's
// PID space as children of their own namespaces).
func Take() Snapshot {
	out := Snapshot{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue
		}
		// comm may hold spaces: the fields after it start past the last ')'.
		s := string(stat)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 20 {
			continue
		}
		// f[0] is field 3 (state): utime..cstime are fields 14..17,
		// starttime is 22.
		var ticks float64
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
		comm := s[strings.IndexByte(s, '(')+1 : end]
		out[pid] = procCPU{start: f[19], group: classify(dir, comm), seconds: ticks / 100}
	}
	return out
}

// classify names the part of a cluster (or the host) a process belongs to.
func classify(dir, comm string) string {
	inNode := nsDepth(dir) > 1
	cmdline, _ := os.ReadFile(dir + "/cmdline")
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	switch {
	case filepath.Base(args[0]) == "berth-node" && len(args) > 1 && nodeComponents[args[1]]:
		return args[1]
	case filepath.Base(args[0]) == "berth-node" && nsPID(dir) == "1":
		return "berth-node (supervisor, pod network)"
	case filepath.Base(args[0]) == "berth-node":
		if len(args) > 1 {
			return "berth-node " + args[1]
		}
		return "berth-node"
	case comm == "containerd" && inNode:
		return "containerd (nodes)"
	case strings.HasPrefix(comm, "containerd-shim") && inNode:
		return "containerd shims (nodes)"
	case comm == "dockerd" || comm == "containerd" || strings.HasPrefix(comm, "containerd-shim") || comm == "docker-proxy":
		return "host Docker (" + comm + ")"
	case inNode:
		return "pods and other node processes"
	}
	return "" // not berth's: left out of the breakdown
}

// nsDepth is how many PID namespaces the process is seen from (1 on the
// host, 2 in a node container, 3 in a pod).
func nsDepth(dir string) int {
	return len(strings.Fields(nsPIDLine(dir)))
}

// nsPID is the process's PID in its innermost namespace.
func nsPID(dir string) string {
	f := strings.Fields(nsPIDLine(dir))
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func nsPIDLine(dir string) string {
	status, _ := os.ReadFile(dir + "/status")
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return rest
		}
	}
	return ""
}

// Since sums, per group, what processes spent since before was taken:
// processes alive then count their difference, new ones everything.
// Processes that exited unreaped by anything measured are lost; callers
// print the rest of the machine's busy time as Unattributed.
func Since(before Snapshot) map[string]float64 {
	res := map[string]float64{}
	for pid, p := range Take() {
		if p.group == "" {
			continue
		}
		v := p.seconds
		if b, ok := before[pid]; ok && b.start == p.start {
			v -= b.seconds
		}
		res[p.group] += v
	}
	return res
}

// Unattributed names the machine's busy time no measured process
// accounts for.
const Unattributed = "unattributed (kernel threads, exited processes, the bench's probes)"

// Busy returns the machine's non-idle CPU seconds so far.
func Busy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	fields := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:]
	var busy float64
	for i, f := range fields {
		v, _ := strconv.ParseFloat(f, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += v
	}
	return busy / 100 // USER_HZ
}

// Print writes, under title, each group's median over runs, largest
// first, with every run's figure.
func Print(w io.Writer, title string, groups map[string][]float64) {
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Slice(names, func(i, j int) bool { return Median(groups[names[i]]) > Median(groups[names[j]]) })
	fmt.Fprintln(w, title)
	for _, g := range names {
		fmt.Fprintf(w, "    %-44s %6.2f   (runs: %s)\n", g, Median(groups[g]), join(groups[g]))
	}
}

// Median of v (0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func join(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, ", ")
}
