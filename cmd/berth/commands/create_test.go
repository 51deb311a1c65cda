package commands

import (
	"bytes"
	"strings"
	"testing"
)

// --from-snapshot takes the layout, version and networking from the
// snapshot: flags that would decide them are refused before anything
// is made, and an invalid snapshot name is refused.
func TestCreateFromSnapshotFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from-snapshot", "golden", "--workers", "2"}, "--workers cannot be used with --from-snapshot"},
		{[]string{"--from-snapshot", "golden", "--config", "x.yaml"}, "--config cannot be used with --from-snapshot"},
		{[]string{"--from-snapshot", "golden", "--kubernetes-version", "v1.36"}, "--kubernetes-version cannot be used"},
		{[]string{"--from-snapshot", "Not/Valid"}, "invalid snapshot name"},
		{[]string{"--from-snapshot", "golden", "--name", "Bad_Name"}, "--name"},
	} {
		var out, errOut bytes.Buffer
		g := &Globals{Streams: Streams{Out: &out, ErrOut: &errOut}}
		cmd := newCreateCommand(g)
		cmd.SetArgs(append([]string{"cluster"}, c.args...))
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
