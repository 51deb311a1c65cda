package load

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("gone") }

func TestFanOutSurvivesOneDeadWriter(t *testing.T) {
	var a, b bytes.Buffer
	f := &fanOut{writers: []io.Writer{&a, failingWriter{}, &b}}
	for _, chunk := range []string{"one ", "two"} {
		if n, err := f.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("write %q: %d, %v", chunk, n, err)
		}
	}
	if a.String() != "one two" || b.String() != "one two" {
		t.Errorf("live writers got %q and %q", a.String(), b.String())
	}
	dead := &fanOut{writers: []io.Writer{failingWriter{}}}
	if _, err := dead.Write([]byte("x")); err == nil {
		t.Error("writing with every writer dead succeeded")
	}
}
