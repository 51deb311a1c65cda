package versions

import (
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	for in, want := range map[string]string{
		"":        Releases[0].Kubernetes,
		"v1.35":   "v1.35.4",
		"1.36":    "v1.36.3",
		"v1.37.2": "v1.37.2",
		"1.37.2":  "v1.37.2",
	} {
		r, err := Resolve(in)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", in, err)
		}
		if r.Kubernetes != want {
			t.Errorf("Resolve(%q) = %s, want %s", in, r.Kubernetes, want)
		}
	}
	for _, in := range []string{"v1.34", "v1.37.1", "v2.0", "latest", "v1.3"} {
		_, err := Resolve(in)
		if err == nil {
			t.Fatalf("Resolve(%q) accepted an unsupported version", in)
		}
		for _, v := range Supported() {
			if !strings.Contains(err.Error(), v) {
				t.Errorf("Resolve(%q) error %q does not list %s", in, err, v)
			}
		}
	}
}

func TestReleaseNames(t *testing.T) {
	r, _ := Resolve("v1.37")
	if got := r.StagingVersion(); got != "v0.37.2" {
		t.Errorf("StagingVersion = %s", got)
	}
	if ma, mi := r.MajorMinor(); ma != "1" || mi != "37" {
		t.Errorf("MajorMinor = %s %s", ma, mi)
	}
	if got := r.NodeImage(); got != "berth/node:v1.37.2" {
		t.Errorf("NodeImage = %s", got)
	}
	if Default().Kubernetes != "v1.37.2" {
		t.Errorf("default is %s", Default().Kubernetes)
	}
	seen := map[string]bool{}
	for _, r := range Releases {
		if seen[r.Minor()] {
			t.Errorf("two releases of minor %s", r.Minor())
		}
		seen[r.Minor()] = true
		if r.Etcd == "" || r.CoreDNS == "" || r.Pause == "" {
			t.Errorf("%s: incomplete row %+v", r.Kubernetes, r)
		}
	}
}
