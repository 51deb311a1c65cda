package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPlain(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	p := &Plain{W: &buf, Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	_ = Run(p, "first", func() error { return nil })
	_ = Run(p, "second", func() error { return errors.New("boom") })
	out := buf.String()
	for _, want := range []string{"... first", "ok  first (1s)", "FAIL second (1s): boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("plain output contains escape codes")
	}
}
