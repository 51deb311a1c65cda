package trace

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseNodeLogs(t *testing.T) {
	ref := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	logs := strings.Join([]string{
		`/var/log/berth/berth-node.log:time=2026-11-30T18:52:28.787Z level=INFO msg="component started" node=n1 component=etcd pid=26`,
		`/var/log/berth/berth-node.log:time=2026-11-30T18:52:31.437Z level=INFO msg="API server ready" node=n1`,
		`/var/log/berth/kubelet.log:I1130 18:52:30.439646      66 kubelet_node_status.go:78] "Successfully registered node" node="n1"`,
		`/var/log/berth/kubelet.log:I1130 18:52:30.500000      66 other.go:1] "successfully did something that is no milestone"`,
		`/var/log/berth/kube-apiserver.log:I1130 18:52:30.193695      18 secure_serving.go:216] Serving securely on [::]:6443`,
		`garbage without a colon`,
	}, "\n")
	events := parseNodeLogs("n1", strings.NewReader(logs), ref)
	var whats []string
	for _, e := range events {
		if e.Source != "n1" {
			t.Errorf("source %q, want n1", e.Source)
		}
		whats = append(whats, e.What)
	}
	want := []string{
		"component started component=etcd pid=26",
		"API server ready",
		`kubelet: "Successfully registered node" node="n1"`,
		"kube-apiserver: Serving securely on [::]:6443",
	}
	if strings.Join(whats, "|") != strings.Join(want, "|") {
		t.Fatalf("events:\n%q\nwant\n%q", whats, want)
	}
	if got := events[2].Time; !got.Equal(time.Date(2026, 11, 30, 18, 52, 30, 439646000, time.UTC)) {
		t.Errorf("klog time %v", got)
	}
}

func TestRecorderAndWrite(t *testing.T) {
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tick := base
	r := &Recorder{now: func() time.Time { tick = tick.Add(500 * time.Millisecond); return tick }}
	r.Step("start nodes")(nil)
	r.Step("wait")(errors.New("boom"))
	events := append(r.Events(), Event{Time: base.Add(700 * time.Millisecond), Source: "node-a", What: "kubelet started"})
	var out bytes.Buffer
	if err := Write(&out, base, events); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"+0.500s", "+0.700s", "+1.000s", "+1.500s", "+2.000s"} {
		if !strings.HasPrefix(strings.TrimSpace(lines[i+1]), want) {
			t.Errorf("line %d = %q, want offset %s", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[5], "step wait failed (500ms): boom") {
		t.Errorf("failed step line: %q", lines[5])
	}
}
