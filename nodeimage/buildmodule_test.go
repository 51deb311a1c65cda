package nodeimage

import (
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/berth-dev/berth/nodeimage/versions"
)

const controlGoMod = `module github.com/berth-dev/berth/control

go 1.26.0

require (
	github.com/spf13/cobra v1.10.2
	go.etcd.io/etcd/server/v3 v3.7.0
	k8s.io/client-go v0.37.2
	k8s.io/kubernetes v1.37.2
	github.com/berth-dev/berth/nodeimage/versions v0.0.0
)

require golang.org/x/net v0.50.0 // indirect

replace (
	k8s.io/api => k8s.io/api v0.37.2
	k8s.io/client-go => k8s.io/client-go v0.37.2
)

replace github.com/berth-dev/berth/nodeimage/versions => ../nodeimage/versions
`

func TestGenerateBuildModule(t *testing.T) {
	f, err := modfile.Parse("go.mod", []byte(controlGoMod), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := versions.Resolve("v1.35")
	if err != nil {
		t.Fatal(err)
	}
	if checkedInRelease(f, r) {
		t.Fatal("v1.35 is not the checked-in release")
	}
	if d, _ := versions.Resolve("v1.37.2"); !checkedInRelease(f, d) {
		t.Fatal("v1.37.2 is the checked-in release")
	}
	out, err := generateBuildModule(f, "/src/control", r)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := modfile.Parse("gen.mod", out, nil)
	if err != nil {
		t.Fatalf("generated go.mod does not parse: %v\n%s", err, out)
	}
	if gen.Module.Mod.Path != "github.com/berth-dev/berth/control" || gen.Go.Version != "1.26.0" {
		t.Errorf("module %s go %s", gen.Module.Mod.Path, gen.Go.Version)
	}
	req := map[string]string{}
	for _, r := range gen.Require {
		req[r.Mod.Path] = r.Mod.Version
	}
	for path, want := range map[string]string{
		"k8s.io/kubernetes":         "v1.35.4",
		"k8s.io/client-go":          "v0.35.4",
		"go.etcd.io/etcd/server/v3": "v3.6.5",
		"github.com/spf13/cobra":    "v1.10.2",
	} {
		if req[path] != want {
			t.Errorf("require %s %s, want %s", path, req[path], want)
		}
	}
	if _, ok := req["golang.org/x/net"]; ok {
		t.Error("indirect requirements are left to go mod tidy")
	}
	rep := map[string]string{}
	for _, r := range gen.Replace {
		rep[r.Old.Path] = r.New.Path + " " + r.New.Version
	}
	if rep["k8s.io/api"] != "k8s.io/api v0.35.4" || rep["k8s.io/client-go"] != "k8s.io/client-go v0.35.4" {
		t.Errorf("staging replacements %v", rep)
	}
	if got := rep["github.com/berth-dev/berth/nodeimage/versions"]; !strings.HasPrefix(got, "/src/nodeimage/versions") {
		t.Errorf("local replacement not made absolute: %q", got)
	}
	if buildTags(r) != "k8s_1_35" {
		t.Errorf("build tag %s", buildTags(r))
	}
}
