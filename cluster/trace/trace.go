// Package trace puts the critical path of a create on one timeline: the
// steps berth ran on the host, what berth-node did in each node, and the
// milestones the Kubernetes components log (API server serving, node
// registered and Ready, each pod started). `berth create cluster --trace
// FILE` writes it, so where the seconds of a create go is read from one
// place instead of guessed.
package trace

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Event is one point on the timeline.
type Event struct {
	Time time.Time
	// Source is "host" or a node name.
	Source string
	What   string
}

// Recorder is a progress.Reporter that passes each step on to Next and
// records when it started and ended.
type Recorder struct {
	Next progress.Reporter

	mu     sync.Mutex
	events []Event
	now    func() time.Time
}

// Step implements progress.Reporter.
func (r *Recorder) Step(name string) func(error) {
	next := r.Next
	if next == nil {
		next = progress.Discard{}
	}
	start := r.clock()
	r.add(Event{Time: start, Source: "host", What: "step " + name})
	done := next.Step(name)
	return func(err error) {
		end := r.clock()
		what := fmt.Sprintf("step %s done (%s)", name, end.Sub(start).Round(time.Millisecond))
		if err != nil {
			what = fmt.Sprintf("step %s failed (%s): %v", name, end.Sub(start).Round(time.Millisecond), err)
		}
		r.add(Event{Time: end, Source: "host", What: what})
		done(err)
	}
}

func (r *Recorder) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func (r *Recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns what was recorded so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// NodeLogDir is where berth-node keeps its own log and each component's
// inside a node.
const NodeLogDir = "/var/log/berth"

// milestones are the component log lines that mark the critical path,
// by file. klog's header carries microseconds, so these are the most
// precise times the cluster itself records.
var milestones = map[string][]string{
	"containerd.log":              {"containerd successfully booted"},
	"kube-apiserver.log":          {"Serving securely on"},
	"kube-controller-manager.log": {"successfully acquired lease"},
	"kube-scheduler.log":          {"successfully acquired lease"},
	"kubelet.log":                 {"Successfully registered node", "Fast updating node status as it just became ready", "Observed pod startup duration"},
	"kube-proxy.log":              {"Starting endpoint slice config controller", "Caches are synced for endpoint slice config"},
}

// Collect reads the berth-node log and the component milestones of every
// node of the cluster. Times without a year (klog) are taken to be in
// year of ref.
func Collect(ctx context.Context, p provider.Provider, nodes []provider.Node, ref time.Time) ([]Event, error) {
	var events []Event
	for _, n := range nodes {
		if n.Role == "" || n.Role == nodeconfig.RoleLoadBalancer {
			continue
		}
		var out bytes.Buffer
		files := []string{NodeLogDir + "/berth-node.log"}
		for f := range milestones {
			files = append(files, NodeLogDir+"/"+f)
		}
		sort.Strings(files)
		// One exec per node: grep prints file:line for every file that
		// exists; a missing file (a worker has no API server) is fine.
		args := append([]string{"grep", "-H", "-e", "msg=", "-e", "successfully", "-e", "Successfully", "-e", "Serving securely", "-e", "Fast updating", "-e", "Observed pod startup", "-e", "endpoint slice config", "-s"}, files...)
		if err := p.Exec(ctx, n.Name, nil, &out, args...); err != nil && out.Len() == 0 {
			return nil, fmt.Errorf("reading the logs of node %s: %w", n.Name, err)
		}
		events = append(events, parseNodeLogs(n.Name, &out, ref)...)
	}
	return events, nil
}

func parseNodeLogs(node string, r io.Reader, ref time.Time) []Event {
	var events []Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		file, line, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		base := file[strings.LastIndex(file, "/")+1:]
		if base == "berth-node.log" {
			if e, ok := parseSlog(line); ok {
				e.Source = node
				events = append(events, e)
			}
			continue
		}
		for _, m := range milestones[base] {
			if strings.Contains(line, m) {
				if t, msg, ok := parseKlog(line, ref); ok {
					events = append(events, Event{Time: t, Source: node, What: strings.TrimSuffix(base, ".log") + ": " + msg})
				}
				break
			}
		}
	}
	return events
}

var slogLine = regexp.MustCompile(`^time=(\S+) level=\S+ msg=("(?:[^"\\]|\\.)*"|\S+)(.*)$`)

// parseSlog reads one line of berth-node's text log.
func parseSlog(line string) (Event, bool) {
	m := slogLine.FindStringSubmatch(line)
	if m == nil {
		return Event{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return Event{}, false
	}
	msg := strings.Trim(m[2], `"`)
	// The node= attribute is the source already.
	rest := regexp.MustCompile(`\s*node=\S+`).ReplaceAllString(m[3], "")
	return Event{Time: t, What: strings.TrimSpace(msg + rest)}, true
}

var klogLine = regexp.MustCompile(`^[IWE](\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}\.\d{6})\s+\d+ \S+\] (.*)$`)

// parseKlog reads klog's "Immdd hh:mm:ss.uuuuuu pid file:line] msg" header.
func parseKlog(line string, ref time.Time) (time.Time, string, bool) {
	m := klogLine.FindStringSubmatch(line)
	if m == nil {
		return time.Time{}, "", false
	}
	t, err := time.Parse("2006-01-02 15:04:05.000000", fmt.Sprintf("%d-%s-%s %s", ref.UTC().Year(), m[1], m[2], m[3]))
	if err != nil {
		return time.Time{}, "", false
	}
	msg := m[4]
	if len(msg) > 140 {
		msg = msg[:140] + "…"
	}
	return t, msg, true
}

// Write prints events in time order as offsets from start.
func Write(w io.Writer, start time.Time, events []Event) error {
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	width := len("host")
	for _, e := range events {
		width = max(width, len(e.Source))
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# berth create timeline, t=0 at %s\n", start.UTC().Format(time.RFC3339Nano))
	for _, e := range events {
		fmt.Fprintf(bw, "%+9.3fs  %-*s  %s\n", e.Time.Sub(start).Seconds(), width, e.Source, e.What)
	}
	return bw.Flush()
}
