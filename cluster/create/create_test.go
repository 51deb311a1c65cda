package create

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/internal/pki"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// fakeProvider records what a create asks of the engine.
type fakeProvider struct {
	// The image methods a create never calls (its image step goes through
	// Options.Images) panic if called.
	provider.Provider
	mu       sync.Mutex
	calls    []string
	nodes    []provider.NodeSpec
	existing []provider.Node
	// failNode makes CreateNode of that node fail.
	failNode string
	// failWith is failNode's error (default: a plain refusal).
	failWith error
	// onCreate runs inside CreateNode (to interrupt a create).
	onCreate func(spec provider.NodeSpec)
	// networkTaken makes CreateNetwork fail as when another create of
	// the name made it first.
	networkTaken bool
	netLabels    map[string]string
}

func (f *fakeProvider) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeProvider) called(c string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.calls, c)
}

func (f *fakeProvider) CreateNetwork(_ context.Context, cluster string, labels map[string]string) (*provider.Network, error) {
	f.record("CreateNetwork")
	f.mu.Lock()
	f.netLabels = labels
	f.mu.Unlock()
	if f.networkTaken {
		return nil, fmt.Errorf("network berth-%s: %w", cluster, provider.ErrExists)
	}
	_, sn, _ := net.ParseCIDR("172.30.9.0/24")
	return &provider.Network{Name: "berth-" + cluster, Subnet: sn, Gateway: provider.NthIP(sn, 1)}, nil
}

func (f *fakeProvider) CreateNode(ctx context.Context, spec provider.NodeSpec) error {
	f.record("CreateNode " + spec.Name)
	if f.onCreate != nil {
		f.onCreate(spec)
	}
	if spec.Name == f.failNode {
		if f.failWith != nil {
			return f.failWith
		}
		return errors.New("engine refused")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.nodes = append(f.nodes, spec)
	f.mu.Unlock()
	return nil
}

func (f *fakeProvider) NodePID(context.Context, string) (int, error) { return 0, nil }

func (f *fakeProvider) WriteFile(context.Context, string, string, string, int64, io.Reader) error {
	return nil
}

func (f *fakeProvider) ListNodes(context.Context, string) ([]provider.Node, error) {
	return f.existing, nil
}

func (f *fakeProvider) DeleteCluster(_ context.Context, cluster string) error {
	f.record("DeleteCluster " + cluster)
	return nil
}

func (f *fakeProvider) DeleteCreated(_ context.Context, cluster, id string) error {
	f.record("DeleteCreated " + cluster)
	f.record("DeleteCreated " + cluster + " " + id)
	return nil
}

func (f *fakeProvider) MarkComplete(_ context.Context, cluster string) error {
	f.record("MarkComplete " + cluster)
	return nil
}

func (f *fakeProvider) StopCluster(context.Context, string) error  { return nil }
func (f *fakeProvider) StartCluster(context.Context, string) error { return nil }
func (f *fakeProvider) ClusterObjects(context.Context, string) (int, int, int, error) {
	return 0, 0, 0, nil
}
func (f *fakeProvider) ReadFile(context.Context, string, string) ([]byte, error) { return nil, nil }
func (f *fakeProvider) Exec(context.Context, string, io.Reader, io.Writer, ...string) error {
	return errors.New("no exec in the fake")
}
func (f *fakeProvider) SaveImages(context.Context, []string) (io.ReadCloser, error) { return nil, nil }
func (f *fakeProvider) ImageID(context.Context, string) (string, error)             { return "", nil }
func (f *fakeProvider) ImageLabels(context.Context, string) (map[string]string, bool, error) {
	return nil, true, nil
}
func (f *fakeProvider) ImportImage(context.Context, io.Reader, string, []string) error { return nil }

type fakeImages struct{ ensured []string }

func (f *fakeImages) Ensure(_ context.Context, image string) error {
	f.ensured = append(f.ensured, image)
	return nil
}

func cluster(t *testing.T, roles ...string) *config.Cluster {
	t.Helper()
	c := &config.Cluster{Name: "t"}
	for _, r := range roles {
		c.Nodes = append(c.Nodes, config.Node{Role: r})
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func planFor(t *testing.T, c *config.Cluster) *Plan {
	t.Helper()
	ca, err := pki.NewCluster()
	if err != nil {
		t.Fatal(err)
	}
	_, sn, _ := net.ParseCIDR("172.30.9.0/24")
	p, err := plan(PlanInput{Config: c, Network: &provider.Network{Name: "berth-t", Subnet: sn}, PKI: ca, APIPort: 40000})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func files(n PlannedNode) map[string]provider.File {
	out := map[string]provider.File{}
	for _, f := range n.Spec.Files {
		out[f.Path] = f
	}
	return out
}

func TestPlanOneControlPlaneTwoWorkers(t *testing.T) {
	cp, w := nodeconfig.RoleControlPlane, nodeconfig.RoleWorker
	p := planFor(t, cluster(t, cp, w, w))
	if got := p.Names(); !slices.Equal(got, []string{"t-control-plane", "t-worker", "t-worker2"}) {
		t.Fatalf("names %v", got)
	}
	if len(p.Helpers) != 0 {
		t.Errorf("one control plane needs no load balancer, got %v", p.Helpers)
	}
	if p.Server != "https://127.0.0.1:40000" {
		t.Errorf("server %s", p.Server)
	}
	for i, n := range p.Nodes {
		if want := net.IPv4(172, 30, 9, byte(2+i)).String(); n.Spec.IP.String() != want || n.Node.IP != want {
			t.Errorf("%s: IP %s / %s, want %s", n.Spec.Name, n.Spec.IP, n.Node.IP, want)
		}
		if n.Node.APIServerEndpoint != "https://172.30.9.2:6443" {
			t.Errorf("%s: endpoint %s", n.Spec.Name, n.Node.APIServerEndpoint)
		}
		if want := "10.244." + string(rune('0'+i)) + ".0/24"; n.Node.PodCIDR != want {
			t.Errorf("%s: PodCIDR %s, want %s", n.Spec.Name, n.Node.PodCIDR, want)
		}
		if n.Node.KubernetesVersion == "" || n.Spec.Labels[nodeconfig.LabelKubernetesVersion] != n.Node.KubernetesVersion {
			t.Errorf("%s: version %q, label %q", n.Spec.Name, n.Node.KubernetesVersion, n.Spec.Labels[nodeconfig.LabelKubernetesVersion])
		}
	}
	cpNode, worker := p.Nodes[0], p.Nodes[1]
	if len(cpNode.Spec.Ports) != 1 || cpNode.Spec.Ports[0].HostPort != 40000 || cpNode.Spec.Ports[0].ListenAddress != "127.0.0.1" {
		t.Errorf("API not published on loopback by the control plane: %+v", cpNode.Spec.Ports)
	}
	if len(worker.Spec.Ports) != 0 {
		t.Errorf("worker publishes %+v", worker.Spec.Ports)
	}
	if !slices.Equal(cpNode.Node.Taints, []string{"node-role.kubernetes.io/control-plane:NoSchedule"}) {
		t.Errorf("control plane with workers must be tainted: %v", cpNode.Node.Taints)
	}
	if len(cpNode.Node.PodCIDRs) != 3 || worker.Node.PodCIDRs != nil {
		t.Errorf("PodCIDRs belong on control planes only: %v / %v", cpNode.Node.PodCIDRs, worker.Node.PodCIDRs)
	}
	cf, wf := files(cpNode), files(worker)
	for _, secret := range []string{"/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/sa.key", nodeconfig.AdminKubeconfig} {
		if _, ok := cf[secret]; !ok {
			t.Errorf("control plane lacks %s", secret)
		}
		if _, ok := wf[secret]; ok {
			t.Errorf("worker was given %s", secret)
		}
	}
	if f := cf["/etc/kubernetes/pki/ca.key"]; f.Mode != 0o600 {
		t.Errorf("ca.key mode %o", f.Mode)
	}
	// The admin.conf on the node holds the same identity the host's
	// kubeconfig gets.
	kc, err := clientcmd.Load(cf[nodeconfig.AdminKubeconfig].Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range kc.AuthInfos {
		if string(u.ClientCertificateData) != string(p.Admin.CertPEM()) {
			t.Error("admin.conf and the host kubeconfig hold different admin certificates")
		}
	}
}

func TestPlanSeveralControlPlanesUseALoadBalancer(t *testing.T) {
	cp := nodeconfig.RoleControlPlane
	p := planFor(t, cluster(t, cp, cp, cp, nodeconfig.RoleWorker))
	if len(p.Helpers) != 1 {
		t.Fatalf("want one load balancer, got %d", len(p.Helpers))
	}
	lb := p.Helpers[0]
	if lb.IP.String() != "172.30.9.6" || !lb.Helper || lb.Role != nodeconfig.RoleLoadBalancer {
		t.Errorf("load balancer %+v", lb)
	}
	if !strings.Contains(strings.Join(lb.Args, " "), "172.30.9.2:6443,172.30.9.3:6443,172.30.9.4:6443") {
		t.Errorf("load balancer backends %v", lb.Args)
	}
	for _, n := range p.Nodes {
		if len(n.Spec.Ports) != 0 {
			t.Errorf("%s publishes the API; the load balancer should", n.Spec.Name)
		}
		if n.Node.APIServerEndpoint != "https://172.30.9.6:6443" {
			t.Errorf("%s endpoint %s", n.Spec.Name, n.Node.APIServerEndpoint)
		}
	}
	if got := strings.Count(p.Nodes[0].Node.EtcdInitialCluster, "=http"); got != 3 {
		t.Errorf("etcd members %q", p.Nodes[0].Node.EtcdInitialCluster)
	}
}

func TestStepsAreNamedAndOrdered(t *testing.T) {
	var names []string
	for _, s := range Steps(cluster(t, nodeconfig.RoleControlPlane), 1) {
		names = append(names, s.name)
	}
	want := []string{"checking the name is free", "ensuring the node image", "creating network and certificates", "starting 1 node(s)", "writing the kubeconfig", "waiting for the API server", "waiting for 1 node(s) to be Ready", "waiting for cluster DNS (CoreDNS)", "marking the cluster complete"}
	if !slices.Equal(names, want) {
		t.Errorf("steps\n got %q\nwant %q", names, want)
	}
	if n := len(Steps(cluster(t, nodeconfig.RoleControlPlane), 0)); n != 7 {
		t.Errorf("without --wait the create ends at the API server (and the mark); %d steps", n)
	}
}

func TestCreateRemovesWhatItMadeWhenANodeFails(t *testing.T) {
	p := &fakeProvider{failNode: "t-worker"}
	kcPath := filepath.Join(t.TempDir(), "config")
	images := &fakeImages{}
	_, err := Create(context.Background(), p, Options{Config: cluster(t, nodeconfig.RoleControlPlane, nodeconfig.RoleWorker), KubeconfigPath: kcPath, Images: images})
	if err == nil || !strings.Contains(err.Error(), "engine refused") {
		t.Fatalf("err = %v", err)
	}
	if !p.called("DeleteCreated t") {
		t.Errorf("a failed create must remove the cluster; calls %v", p.calls)
	}
	if len(images.ensured) != 1 {
		t.Errorf("images ensured %v", images.ensured)
	}
	if _, err := os.Stat(kcPath); err == nil {
		t.Error("the kubeconfig was written before the nodes started")
	}
}

func TestCreateInterruptedCleansUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &fakeProvider{onCreate: func(provider.NodeSpec) { cancel() }}
	_, err := Create(ctx, p, Options{Config: cluster(t, nodeconfig.RoleControlPlane)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if !p.called("DeleteCreated t") {
		t.Errorf("an interrupted create must remove the cluster; calls %v", p.calls)
	}
}

func TestCreateRetainKeepsEverything(t *testing.T) {
	p := &fakeProvider{failNode: "t-control-plane"}
	_, err := Create(context.Background(), p, Options{Config: cluster(t, nodeconfig.RoleControlPlane), Retain: true})
	if err == nil || !strings.Contains(err.Error(), "--retain") {
		t.Fatalf("err = %v", err)
	}
	if p.called("DeleteCreated t") {
		t.Error("--retain must keep what was made")
	}
}

func TestCreateRefusesATakenNameBeforeMakingAnything(t *testing.T) {
	p := &fakeProvider{existing: []provider.Node{{Name: "t-control-plane", Cluster: "t"}}}
	_, err := Create(context.Background(), p, Options{Config: cluster(t, nodeconfig.RoleControlPlane)})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("err = %v", err)
	}
	if p.called("CreateNetwork") || p.called("DeleteCreated t") {
		t.Errorf("a taken name must neither make nor remove anything; calls %v", p.calls)
	}
}

func TestCreateWritesKubeconfigAndRemovesItOnLaterFailure(t *testing.T) {
	p := &fakeProvider{}
	kcPath := filepath.Join(t.TempDir(), "config")
	// The fake's nodes never answer: the API wait fails quickly.
	cfg := cluster(t, nodeconfig.RoleControlPlane)
	ctx, cancel := context.WithCancel(context.Background())
	s := &state{opts: Options{Config: cfg, KubeconfigPath: kcPath}, cfg: cfg, p: p}
	steps := Steps(cfg, 0)
	// Run every step up to and including the kubeconfig, then fail.
	steps = append(steps[:5], step{name: "failing", run: func(context.Context, *state) error {
		kc, err := clientcmd.LoadFromFile(kcPath)
		if err != nil {
			return err
		}
		if _, ok := kc.Contexts[kubeconfig.ContextName("t")]; !ok {
			t.Error("context not merged")
		}
		cancel()
		return context.Canceled
	}})
	err := runner{status: progress.Discard{}}.run(ctx, s, steps)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	kc, err := clientcmd.LoadFromFile(kcPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := kc.Contexts[kubeconfig.ContextName("t")]; ok {
		t.Error("the context of a failed create was left in the kubeconfig")
	}
	if fi, err := os.Stat(kcPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v (%v)", fi.Mode(), err)
	}
}

// Two creates of one name: the one whose network the engine refused (the
// other create made it) fails saying so, and removes nothing at all.
func TestCreateLosingTheNameRemovesNothing(t *testing.T) {
	p := &fakeProvider{networkTaken: true}
	kc := filepath.Join(t.TempDir(), "config")
	_, err := Create(context.Background(), p, Options{Config: cluster(t, nodeconfig.RoleControlPlane), KubeconfigPath: kc})
	if !errors.Is(err, provider.ErrExists) || !strings.Contains(err.Error(), "being created by another berth") {
		t.Fatalf("err = %v", err)
	}
	for _, c := range p.calls {
		if strings.HasPrefix(c, "Delete") || strings.HasPrefix(c, "CreateNode") || strings.HasPrefix(c, "MarkComplete") {
			t.Errorf("the losing create called %s; calls %v", c, p.calls)
		}
	}
}

// When both creates got a network (the engine's duplicate check is not
// atomic), the node name decides; the loser removes only what carries its
// own create ID, never the cluster by name.
func TestCreateLosingTheNodeNameRemovesOnlyItsOwn(t *testing.T) {
	p := &fakeProvider{failNode: "t-control-plane", failWith: fmt.Errorf("creating node t-control-plane: %w", provider.ErrExists)}
	_, err := Create(context.Background(), p, Options{Config: cluster(t, nodeconfig.RoleControlPlane)})
	if !errors.Is(err, provider.ErrExists) || !strings.Contains(err.Error(), "being created by another berth") {
		t.Fatalf("err = %v", err)
	}
	id := p.netLabels[provider.LabelCreateID]
	if id == "" {
		t.Fatalf("network made without a create ID: %v", p.netLabels)
	}
	if !p.called("DeleteCreated t " + id) {
		t.Errorf("the loser must remove its own network (create %s); calls %v", id, p.calls)
	}
	if p.called("DeleteCluster t") {
		t.Errorf("the loser removed the cluster by name (the winner's too); calls %v", p.calls)
	}
}

// Every node carries the create's ID (the one on the network); the
// completion mark is the last step, and a create that failed never
// reaches it.
func TestCreateLabelsNodesAndMarksCompletion(t *testing.T) {
	p := &fakeProvider{}
	s := &state{opts: Options{}, cfg: cluster(t, nodeconfig.RoleControlPlane, nodeconfig.RoleControlPlane, nodeconfig.RoleControlPlane, nodeconfig.RoleWorker), p: p, createID: newCreateID()}
	if err := createNetworkAndPKI(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := startNodes(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	id := p.netLabels[provider.LabelCreateID]
	if id != s.createID || len(p.nodes) != 5 {
		t.Fatalf("network create ID %q (want %q), %d containers", id, s.createID, len(p.nodes))
	}
	for _, n := range p.nodes {
		if n.Labels[provider.LabelCreateID] != id {
			t.Errorf("node %s has create ID %q, want %q", n.Name, n.Labels[provider.LabelCreateID], id)
		}
	}
	steps := Steps(s.cfg, 0)
	if last := steps[len(steps)-1]; last.name != "marking the cluster complete" {
		t.Errorf("last step %q", last.name)
	}
	if err := steps[len(steps)-1].run(context.Background(), s); err != nil || !p.called("MarkComplete t") {
		t.Errorf("mark step: %v; calls %v", err, p.calls)
	}

	failed := &fakeProvider{failNode: "t-worker"}
	_, _ = Create(context.Background(), failed, Options{Config: cluster(t, nodeconfig.RoleControlPlane, nodeconfig.RoleWorker)})
	if failed.called("MarkComplete t") || failed.called("DeleteCluster t") {
		t.Errorf("a failed create marked the cluster complete or deleted it by name; calls %v", failed.calls)
	}
}
