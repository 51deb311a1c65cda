package commands

import (
	"bytes"
	"testing"

	"github.com/berth-dev/berth/cluster/progress"
)

func TestQuietHasNoSteps(t *testing.T) {
	var errOut bytes.Buffer
	g := &Globals{Streams: Streams{ErrOut: &errOut}, Quiet: true}
	_ = progress.Run(g.Status(), "creating cluster", func() error { return nil })
	if errOut.Len() != 0 {
		t.Errorf("--quiet printed %q", errOut.String())
	}
	g = &Globals{Streams: Streams{ErrOut: &errOut}, Verbose: 1}
	_ = progress.Run(g.Status(), "creating cluster", func() error { return nil })
	if !bytes.Contains(errOut.Bytes(), []byte("ok  creating cluster")) {
		t.Errorf("--verbose printed %q, want plain step lines", errOut.String())
	}
}
