package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cluster/provider"
)

func TestHostsTOML(t *testing.T) {
	got := string(HostsTOML("http://berth-registry:5000"))
	want := `# Written by berth: the local registry (berth get registry).
server = "http://berth-registry:5000"

[host."http://berth-registry:5000"]
  capabilities = ["pull", "resolve"]
`
	if got != want {
		t.Errorf("hosts.toml\n%s\nwant\n%s", got, want)
	}
}

func TestUseIn(t *testing.T) {
	spec := provider.NodeSpec{Name: "n", Files: []provider.File{{Path: "/etc/berth/node.json"}}}
	UseIn(&spec, 5001)
	if len(spec.Files) != 3 || spec.Labels[Label] != "5001" {
		t.Errorf("spec %+v", spec)
	}
}

func TestHostsFiles(t *testing.T) {
	files := HostsFiles(5002)
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		if f.Mode != 0o644 || !strings.Contains(string(f.Data), `server = "http://berth-registry:5000"`) {
			t.Errorf("%s: mode %v, content\n%s", f.Path, f.Mode, f.Data)
		}
	}
	want := []string{"/etc/containerd/certs.d/localhost:5002/hosts.toml", "/etc/containerd/certs.d/berth-registry:5000/hosts.toml"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
}

// fakeRegistries is the registry part of a provider.
type fakeRegistries struct {
	provider.Provider
	reg   *provider.Registry
	nodes []provider.Node
	calls []string
	// serve, when set, makes CreateRegistry and StartRegistry start an
	// HTTP server answering /v2/ on the registry's port.
	serve func(port int)
}

func (f *fakeRegistries) GetRegistry(context.Context, string) (*provider.Registry, error) {
	if f.reg == nil {
		return nil, nil
	}
	r := *f.reg
	return &r, nil
}

func (f *fakeRegistries) CreateRegistry(_ context.Context, spec provider.RegistrySpec) error {
	f.calls = append(f.calls, "create "+spec.Name+" "+spec.Image+" "+spec.Volume+" "+strconv.Itoa(spec.HostPort))
	f.reg = &provider.Registry{Name: spec.Name, State: "running", HostPort: spec.HostPort, ListenAddress: spec.ListenAddress, Volume: spec.Volume, Labels: spec.Labels}
	if f.serve != nil {
		f.serve(spec.HostPort)
	}
	return nil
}

func (f *fakeRegistries) StartRegistry(context.Context, string) error {
	f.calls = append(f.calls, "start")
	f.reg.State = "running"
	if f.serve != nil {
		f.serve(f.reg.HostPort)
	}
	return nil
}

func (f *fakeRegistries) DeleteRegistry(_ context.Context, name, volume string) error {
	f.calls = append(f.calls, "delete "+name+" "+volume)
	f.reg = nil
	return nil
}

func (f *fakeRegistries) ListNodes(context.Context, string) ([]provider.Node, error) {
	return f.nodes, nil
}

func (f *fakeRegistries) ConnectRegistry(_ context.Context, name, network string) error {
	f.calls = append(f.calls, "connect "+name+" "+network)
	return nil
}

func (f *fakeRegistries) VolumeSize(context.Context, string) (int64, error) { return 1234, nil }

// freePort returns a port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveV2 answers the registry API's base on port until the test ends.
func serveV2(t *testing.T) func(port int) {
	return func(port int) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				w.Write([]byte("{}"))
				return
			}
			http.NotFound(w, r)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
}

func TestEnsureCreatesAMissingRegistry(t *testing.T) {
	port := freePort(t)
	// Clusters created with this registry before it was deleted get it
	// back; others do not.
	uses := map[string]string{Label: strconv.Itoa(port)}
	f := &fakeRegistries{serve: serveV2(t), nodes: []provider.Node{
		{Name: "old-control-plane", Cluster: "old", Labels: uses},
		{Name: "old-worker", Cluster: "old", Labels: uses},
		{Name: "plain-control-plane", Cluster: "plain"},
		{Name: "elsewhere-control-plane", Cluster: "elsewhere", Labels: map[string]string{Label: "5999"}},
	}}
	built := 0
	r, err := Ensure(context.Background(), f, port, func(context.Context) error { built++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if built != 1 || len(f.calls) != 2 || !strings.HasPrefix(f.calls[0], "create berth-registry berth/registry:v3.1.2 berth-registry-data "+strconv.Itoa(port)) ||
		f.calls[1] != "connect berth-registry berth-old" {
		t.Errorf("built %d times, calls %q", built, f.calls)
	}
	if r == nil || r.Labels[Label] != strconv.Itoa(port) {
		t.Errorf("registry %+v", r)
	}
}

func TestEnsureUsesARunningRegistry(t *testing.T) {
	f := &fakeRegistries{reg: &provider.Registry{Name: Name, State: "running", HostPort: 5001, Labels: map[string]string{Label: "5001"}}}
	if _, err := Ensure(context.Background(), f, 5001, func(context.Context) error { return errors.New("must not build") }); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 {
		t.Errorf("calls %q", f.calls)
	}
}

func TestEnsureStartsAStoppedRegistry(t *testing.T) {
	port := freePort(t)
	f := &fakeRegistries{serve: serveV2(t), reg: &provider.Registry{Name: Name, State: "exited", HostPort: port, Labels: map[string]string{Label: strconv.Itoa(port)}}}
	if _, err := Ensure(context.Background(), f, port, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.calls, []string{"start"}) {
		t.Errorf("calls %q", f.calls)
	}
}

func TestEnsureRefuses(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		what string
		reg  *provider.Registry
		port int
		want string
	}{
		{"another port", &provider.Registry{Name: Name, State: "running", HostPort: 5001, Labels: map[string]string{Label: "5001"}}, 5002,
			"published on localhost:5001, not on port 5002"},
		{"a foreign container", &provider.Registry{Name: Name, State: "running", HostPort: 5001}, 5001, "berth did not make it"},
		{"a taken port", nil, takenPort, "port " + strconv.Itoa(takenPort) + " on 127.0.0.1 is taken"},
	} {
		f := &fakeRegistries{reg: tc.reg}
		_, err := Ensure(context.Background(), f, tc.port, func(context.Context) error { t.Errorf("%s: built", tc.what); return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.what, err, tc.want)
		}
		if len(f.calls) != 0 {
			t.Errorf("%s: calls %q", tc.what, f.calls)
		}
	}
}

func TestGetListsClusters(t *testing.T) {
	f := &fakeRegistries{reg: &provider.Registry{Name: Name, State: "running", HostPort: 5001, Volume: Volume,
		Networks: []string{"berth-dev", "berth-test", "bridge"}, Labels: map[string]string{Label: "5001"}}}
	info, err := Get(context.Background(), f, true)
	if err != nil {
		t.Fatal(err)
	}
	if info.Address != "localhost:5001" || info.InNetwork != "berth-registry:5000" || !slices.Equal(info.Clusters, []string{"dev", "test"}) || info.Size != 1234 {
		t.Errorf("info %+v", info)
	}
	if info, err := Get(context.Background(), &fakeRegistries{}, false); info != nil || err != nil {
		t.Errorf("no registry: %+v, %v", info, err)
	}
}

func TestDelete(t *testing.T) {
	f := &fakeRegistries{reg: &provider.Registry{Name: Name, Volume: Volume, Labels: map[string]string{Label: "5001"}}}
	found, err := Delete(context.Background(), f)
	if err != nil || !found || !slices.Equal(f.calls, []string{"delete berth-registry berth-registry-data"}) {
		t.Errorf("found %v, err %v, calls %q", found, err, f.calls)
	}
	found, err = Delete(context.Background(), f)
	if err != nil || found {
		t.Errorf("again: found %v, err %v", found, err)
	}
	f = &fakeRegistries{reg: &provider.Registry{Name: Name}}
	if _, err := Delete(context.Background(), f); err == nil || len(f.calls) != 0 {
		t.Errorf("a foreign container: err %v, calls %q", err, f.calls)
	}
}
