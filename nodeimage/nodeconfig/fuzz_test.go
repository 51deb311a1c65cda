package nodeconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoad feeds berth-node's configuration reader arbitrary files: no
// panic, and a configuration it accepts survives Marshal and Load
// unchanged.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"cluster":"c","name":"c-control-plane","role":"control-plane","ip":"172.30.0.2"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "node.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		n, err := Load(path)
		if err != nil {
			return
		}
		out, err := n.Marshal()
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := Load(path)
		if err != nil {
			t.Fatalf("marshalled config no longer loads: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(n, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", n, back)
		}
	})
}

// FuzzParseVFLabel: the SR-IOV label decoder never panics, and what it
// decodes encodes back to a label that decodes the same.
func FuzzParseVFLabel(f *testing.F) {
	f.Add(``)
	f.Add(`[]`)
	f.Add(`[{"pf":"eth0","pciAddress":"0000:3b:02.1","resourceName":"berth.dev/vf"}]`)
	f.Fuzz(func(t *testing.T, s string) {
		vfs, err := ParseVFLabel(s)
		if err != nil {
			return
		}
		label, err := FormatVFLabel(vfs)
		if err != nil {
			return // FormatVFLabel validates; the parser does not
		}
		back, err := ParseVFLabel(label)
		if err != nil {
			t.Fatalf("re-encoded label %q does not parse: %v", label, err)
		}
		if len(vfs) == 0 && len(back) == 0 {
			return
		}
		if !reflect.DeepEqual(vfs, back) {
			t.Fatalf("round trip changed the VFs:\n%+v\n%+v", vfs, back)
		}
	})
}
