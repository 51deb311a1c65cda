package ui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
)

func key(t tea.KeyType) tea.KeyMsg { return tea.KeyMsg{Type: t} }
func runes(s string) tea.KeyMsg    { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func update(m tea.Model, msgs ...tea.Msg) tea.Model {
	for _, msg := range msgs {
		m, _ = m.Update(msg)
	}
	return m
}

func TestPickerMovesFiltersAndPicks(t *testing.T) {
	m := NewPicker("Which cluster?", []string{"alpha", "beta", "gamma", "delta"}, nil)
	got := update(m, key(tea.KeyDown), key(tea.KeyDown)).(PickerModel)
	if got.Current() != "gamma" {
		t.Fatalf("after 2×down current = %q, want gamma", got.Current())
	}
	// Up from the top wraps to the bottom.
	if c := update(m, key(tea.KeyUp)).(PickerModel).Current(); c != "delta" {
		t.Errorf("up at top: current = %q, want delta", c)
	}
	got = update(m, runes("e"), runes("l")).(PickerModel)
	if v := strings.Join(got.Visible(), ","); v != "delta" {
		t.Errorf("filter %q: visible = %s, want delta", got.Filter(), v)
	}
	got = update(got, key(tea.KeyBackspace)).(PickerModel)
	if v := strings.Join(got.Visible(), ","); v != "beta,delta" {
		t.Errorf("filter %q: visible = %s, want beta,delta", got.Filter(), v)
	}
	view := got.View()
	if !strings.Contains(view, "Which cluster?") || !strings.Contains(view, SymPointer+" beta") {
		t.Errorf("view does not show the title and the cursor on beta:\n%s", view)
	}
	next, cmd := got.Update(key(tea.KeyEnter))
	if next.(PickerModel).Chosen != "beta" || cmd == nil {
		t.Errorf("enter: chosen = %q (quit cmd %v), want beta", next.(PickerModel).Chosen, cmd != nil)
	}
	// Enter with nothing matching picks nothing.
	none := update(m, runes("zzz"), key(tea.KeyEnter)).(PickerModel)
	if none.Chosen != "" || !strings.Contains(none.View(), "no match") {
		t.Errorf("no match: chosen %q, view:\n%s", none.Chosen, none.View())
	}
	if c := update(m, key(tea.KeyEsc)).(PickerModel); !c.Canceled {
		t.Error("esc did not cancel")
	}
}

func TestPickerScrolls(t *testing.T) {
	var items []string
	for _, c := range "abcdefghijklmnop" {
		items = append(items, string(c)+"-node")
	}
	m := NewPicker("Which node?", items, nil)
	m.Height = 3
	got := update(m, key(tea.KeyDown), key(tea.KeyDown), key(tea.KeyDown), key(tea.KeyDown)).(PickerModel)
	view := got.View()
	if !strings.Contains(view, SymPointer+" e-node") || strings.Contains(view, "a-node") || !strings.Contains(view, "(3 of 16)") {
		t.Errorf("scrolled view:\n%s", view)
	}
}

func TestPickerProgram(t *testing.T) {
	tm := teatest.NewTestModel(t, NewPicker("Which service?", []string{"api", "web", "worker"}, nil), teatest.WithInitialTermSize(80, 20))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("worker")) }, teatest.WithDuration(3*time.Second))
	tm.Type("wo")
	tm.Send(key(tea.KeyEnter))
	final := tm.FinalModel(t, teatest.WithFinalTimeout(3*time.Second)).(PickerModel)
	if final.Chosen != "worker" {
		t.Errorf("chosen = %q, want worker", final.Chosen)
	}
}

func TestConfirm(t *testing.T) {
	for _, tc := range []struct {
		msg      tea.Msg
		answered bool
		yes      bool
	}{
		{runes("y"), true, true},
		{runes("Y"), true, true},
		{runes("n"), true, false},
		{key(tea.KeyEnter), true, false},
		{key(tea.KeyCtrlC), true, false},
		{runes("x"), false, false},
	} {
		m := update(NewConfirm("Delete cluster x?", []string{"1 node"}, nil), tc.msg).(ConfirmModel)
		if m.Answered != tc.answered || m.Yes != tc.yes {
			t.Errorf("%v: answered=%v yes=%v, want %v %v", tc.msg, m.Answered, m.Yes, tc.answered, tc.yes)
		}
	}
	view := NewConfirm("Delete cluster x?", []string{"cluster x: 1 node"}, nil).View()
	if !strings.Contains(view, "cluster x: 1 node") || !strings.Contains(view, "Delete cluster x? [y/N]") {
		t.Errorf("view:\n%s", view)
	}
}

func TestConfirmProgram(t *testing.T) {
	tm := teatest.NewTestModel(t, NewConfirm("Drain node n1?", []string{"2 pod(s) will be evicted"}, nil), teatest.WithInitialTermSize(80, 10))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("[y/N]")) }, teatest.WithDuration(3*time.Second))
	tm.Type("y")
	if m := tm.FinalModel(t, teatest.WithFinalTimeout(3*time.Second)).(ConfirmModel); !m.Yes {
		t.Error("typing y did not confirm")
	}
}

func TestChooseWithoutTerminal(t *testing.T) {
	var out bytes.Buffer
	p := &Prompt{In: strings.NewReader(""), Out: &out, Run: func(context.Context, tea.Model) (tea.Model, error) {
		t.Fatal("asked without a terminal")
		return nil, nil
	}}
	ctx := context.Background()
	got, err := p.Choose(ctx, Choice{What: "cluster", Candidates: []string{"dev"}})
	if err != nil || got != "dev" || out.String() != "Using cluster dev\n" {
		t.Errorf("one candidate: %q, %v, output %q", got, err, out.String())
	}
	_, err = p.Choose(ctx, Choice{What: "cluster", Candidates: []string{"a", "b"}, Hint: "name one with --name NAME"})
	var amb *AmbiguousError
	if !errors.As(err, &amb) || !strings.Contains(err.Error(), "(a, b)") || !strings.Contains(err.Error(), "--name NAME") {
		t.Errorf("two candidates: %v", err)
	}
	var none *NoCandidatesError
	if _, err := p.Choose(ctx, Choice{What: "node"}); !errors.As(err, &none) {
		t.Errorf("no candidates: %v", err)
	}
	if ok, err := p.Confirm(ctx, "Delete?", nil); ok || err != nil {
		t.Errorf("confirm without terminal = %v, %v; want false, nil", ok, err)
	}
}

func TestChooseAtTerminal(t *testing.T) {
	var out bytes.Buffer
	p := &Prompt{Out: &out, Interactive: true, Run: func(_ context.Context, m tea.Model) (tea.Model, error) {
		return update(m, key(tea.KeyDown), key(tea.KeyEnter)), nil
	}}
	got, err := p.Choose(context.Background(), Choice{What: "cluster", Candidates: []string{"a", "b"}})
	if err != nil || got != "b" || !strings.Contains(out.String(), "Using cluster b") {
		t.Errorf("picked %q, %v, output %q", got, err, out.String())
	}
	p.Run = func(_ context.Context, m tea.Model) (tea.Model, error) { return update(m, key(tea.KeyEsc)), nil }
	if _, err := p.Choose(context.Background(), Choice{What: "cluster", Candidates: []string{"a", "b"}}); !errors.Is(err, ErrCanceled) {
		t.Errorf("cancelled picker: err = %v", err)
	}
	p.Run = func(_ context.Context, m tea.Model) (tea.Model, error) { return update(m, runes("y")), nil }
	if ok, err := p.Confirm(context.Background(), "Delete?", nil); !ok || err != nil {
		t.Errorf("confirm = %v, %v", ok, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStepsOverlapping(t *testing.T) {
	var buf syncBuffer
	s := &Steps{W: &buf, Theme: NewTheme(false), Interval: 5 * time.Millisecond, Width: 80}
	a := s.Step("creating network")
	b := s.Step("creating nodes")
	time.Sleep(30 * time.Millisecond)
	a(nil)
	time.Sleep(20 * time.Millisecond)
	b(errors.New("port 6443 is taken"))
	out := buf.String()
	for _, want := range []string{SymOK + " creating network (", SymFail + " creating nodes (", "port 6443 is taken"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%q", want, out)
		}
	}
	// The last thing written is the failure: no step is left drawn.
	if !strings.HasSuffix(out, "port 6443 is taken\n") {
		t.Errorf("output does not end with the failure:\n%q", out)
	}
	if !strings.Contains(out, "\x1b[") {
		t.Error("no redraws of the lines in flight")
	}
	// Done twice is harmless.
	a(nil)
}

func TestReporterWithoutTerminal(t *testing.T) {
	var buf bytes.Buffer
	r := Reporter(&buf, NewTheme(true), false)
	r.Step("x")(nil)
	if strings.Contains(buf.String(), "\x1b") || !strings.Contains(buf.String(), " ok  x") {
		t.Errorf("plain output = %q", buf.String())
	}
	buf.Reset()
	Reporter(&buf, NewTheme(true), true).Step("x")(nil)
	if buf.Len() != 0 {
		t.Errorf("quiet output = %q", buf.String())
	}
}

func TestThemePlain(t *testing.T) {
	if s := NewTheme(false).Fail.Render("error:"); s != "error:" {
		t.Errorf("plain theme renders %q", s)
	}
	if s := NewTheme(true).Fail.Render("error:"); !strings.Contains(s, "\x1b[") {
		t.Errorf("colour theme renders %q", s)
	}
}

func snapshot() *Snapshot {
	return &Snapshot{
		Cluster: "dev", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Server: "127.0.0.1:40000",
		Nodes: []NodeStatus{
			{Name: "dev-control-plane", Role: "control-plane", Container: "running", Status: "Ready", CPUPercent: 12.34, MemoryBytes: 700 << 20, Pods: 9, PodsReady: 8},
			{Name: "dev-worker", Role: "worker", Container: "exited", Status: "Unknown", CPUPercent: -1},
		},
		Warnings: []WarningEvent{{Namespace: "default", Object: "pod/web", Reason: "BackOff", Message: "Back-off\nrestarting", Count: 3}},
		Problems: []string{"listing events: timeout"},
	}
}

func TestRenderSnapshot(t *testing.T) {
	out := RenderSnapshot(snapshot(), NewTheme(false), 0)
	for _, want := range []string{"Cluster dev", "API 127.0.0.1:40000", "dev-control-plane", "12.3%", "700Mi", "8/9", "dev-worker", "Unknown", "BackOff default/pod/web: Back-off restarting (x3)", "listing events: timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("snapshot lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("plain snapshot has escape codes:\n%q", out)
	}
}

func TestStatusModel(t *testing.T) {
	calls := 0
	fetch := func(context.Context) (*Snapshot, error) {
		calls++
		if calls == 2 {
			return nil, errors.New("API server gone")
		}
		return snapshot(), nil
	}
	m := NewStatusModel(context.Background(), fetch, time.Second, nil)
	if !strings.Contains(m.View(), "reading the cluster") {
		t.Errorf("initial view:\n%s", m.View())
	}
	msg := m.Init()()
	next, cmd := m.Update(msg)
	if cmd == nil {
		t.Fatal("no refresh scheduled after a snapshot")
	}
	view := next.View()
	if !strings.Contains(view, "dev-control-plane") || !strings.Contains(view, "q quit") {
		t.Errorf("view after snapshot:\n%s", view)
	}
	// A failed refresh keeps the last snapshot and shows the error.
	next = update(next, tickMsg{})
	next = update(next, next.(StatusModel).fetch()())
	view = next.View()
	if !strings.Contains(view, "dev-control-plane") || !strings.Contains(view, "API server gone") {
		t.Errorf("view after failed refresh:\n%s", view)
	}
	final, cmd := next.Update(runes("q"))
	if !final.(StatusModel).Quit || cmd == nil {
		t.Error("q did not quit")
	}
}

func TestStatusProgram(t *testing.T) {
	fetch := func(context.Context) (*Snapshot, error) { return snapshot(), nil }
	tm := teatest.NewTestModel(t, NewStatusModel(context.Background(), fetch, 50*time.Millisecond, nil), teatest.WithInitialTermSize(120, 30))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("dev-worker")) }, teatest.WithDuration(3*time.Second))
	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(3*time.Second))
	_, _ = io.ReadAll(tm.FinalOutput(t))
}

func TestFormat(t *testing.T) {
	for in, want := range map[uint64]string{512: "512B", 2048: "2.0Ki", 700 << 20: "700Mi", 3 << 30: "3.0Gi"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{850 * time.Millisecond: "850ms", 4210 * time.Millisecond: "4.2s", 65 * time.Second: "1m05s"} {
		if got := FormatDuration(in); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", in, got, want)
		}
	}
}
