package create

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/registry"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// registryProvider is the fake provider with a running local registry.
type registryProvider struct {
	fakeProvider
	reg *provider.Registry
}

func (f *registryProvider) GetRegistry(context.Context, string) (*provider.Registry, error) {
	return f.reg, nil
}

func (f *registryProvider) ConnectRegistry(_ context.Context, name, network string) error {
	f.record("ConnectRegistry " + name + " " + network)
	return nil
}

func (f *registryProvider) DisconnectRegistry(_ context.Context, name, network string) error {
	f.record("DisconnectRegistry " + name + " " + network)
	return nil
}

func (f *registryProvider) DeleteRegistry(context.Context, string, string) error {
	f.record("DeleteRegistry")
	return nil
}

func withRegistry(t *testing.T, c *config.Cluster, port int) *config.Cluster {
	t.Helper()
	c.Registry = &config.RegistryConfig{Port: port}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPlanGivesEveryNodeTheRegistryHosts(t *testing.T) {
	p := planFor(t, withRegistry(t, cluster(t, nodeconfig.RoleControlPlane, nodeconfig.RoleWorker), 5003))
	for _, n := range p.Nodes {
		if n.Spec.Labels[registry.Label] != "5003" {
			t.Errorf("%s: labels %v", n.Spec.Name, n.Spec.Labels)
		}
		f := files(n)
		for _, host := range []string{"localhost:5003", "berth-registry:5000"} {
			hosts, ok := f["/etc/containerd/certs.d/"+host+"/hosts.toml"]
			if !ok || !strings.Contains(string(hosts.Data), `[host."http://berth-registry:5000"]`) {
				t.Errorf("%s: hosts.toml for %s: %q", n.Spec.Name, host, hosts.Data)
			}
		}
	}
	for _, n := range planFor(t, cluster(t, nodeconfig.RoleControlPlane)).Nodes {
		for path := range files(n) {
			if strings.HasPrefix(path, registry.CertsDir) {
				t.Errorf("%s got %s without a registry", n.Spec.Name, path)
			}
		}
	}
}

func TestStepsWithARegistry(t *testing.T) {
	var names []string
	for _, s := range Steps(withRegistry(t, cluster(t, nodeconfig.RoleControlPlane), 0), 0) {
		names = append(names, s.name)
	}
	want := []string{"checking the name is free", "ensuring the node image", "starting the local registry (localhost:5001)",
		"creating network and certificates", "starting 1 node(s)", "connecting the local registry",
		"writing the kubeconfig", "waiting for the API server", "publishing the local registry's address", "marking the cluster complete"}
	if !slices.Equal(names, want) {
		t.Errorf("steps\n got %q\nwant %q", names, want)
	}
}

func TestCreateConnectsTheRegistryAndDisconnectsItOnFailure(t *testing.T) {
	p := &registryProvider{reg: &provider.Registry{Name: registry.Name, State: "running", HostPort: 5001, Labels: map[string]string{registry.Label: "5001"}}}
	cfg := withRegistry(t, cluster(t, nodeconfig.RoleControlPlane), 0)
	s := &state{opts: Options{Config: cfg}, cfg: cfg, p: p}
	var steps []step
	for _, st := range Steps(cfg, 0) {
		steps = append(steps, st)
		if st.name == "connecting the local registry" {
			break
		}
	}
	steps = append(steps, step{name: "failing", run: func(context.Context, *state) error { return errors.New("later step failed") }})
	err := runner{status: progress.Discard{}}.run(context.Background(), s, steps)
	if err == nil || !strings.Contains(err.Error(), "later step failed") {
		t.Fatalf("err = %v", err)
	}
	for _, c := range []string{"ConnectRegistry berth-registry berth-t", "DisconnectRegistry berth-registry berth-t", "DeleteCreated t"} {
		if !p.called(c) {
			t.Errorf("no %q; calls %q", c, p.calls)
		}
	}
	if p.called("DeleteRegistry") {
		t.Error("a failed create removed the shared registry")
	}
	if i, j := slices.Index(p.calls, "DisconnectRegistry berth-registry berth-t"), slices.Index(p.calls, "DeleteCreated t"); i > j {
		t.Errorf("the registry was disconnected after the network was removed: %q", p.calls)
	}
}

func TestCreateRefusesARegistryOnAnotherPortBeforeMakingAnything(t *testing.T) {
	p := &registryProvider{reg: &provider.Registry{Name: registry.Name, State: "running", HostPort: 5001, Labels: map[string]string{registry.Label: "5001"}}}
	_, err := Create(context.Background(), p, Options{Config: withRegistry(t, cluster(t, nodeconfig.RoleControlPlane), 5009)})
	if err == nil || !strings.Contains(err.Error(), "not on port 5009") {
		t.Fatalf("err = %v", err)
	}
	if p.called("CreateNetwork") || p.called("DeleteCreated t") {
		t.Errorf("calls %q", p.calls)
	}
}

func TestRegistryHostingConfigMap(t *testing.T) {
	cm := registryHosting(5001)
	if cm.Namespace != "kube-public" || cm.Name != "local-registry-hosting" {
		t.Errorf("%s/%s", cm.Namespace, cm.Name)
	}
	want := "host: \"localhost:5001\"\nhostFromContainerRuntime: \"berth-registry:5000\"\n"
	if got := cm.Data["localRegistryHosting.v1"]; got != want {
		t.Errorf("data %q, want %q", got, want)
	}
}
