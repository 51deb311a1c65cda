package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	cc "github.com/berth-dev/berth/control/componentconfig"
	"github.com/berth-dev/berth/control/supervisor"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

func testNode(role string) *nodeconfig.Node {
	return &nodeconfig.Node{
		Cluster: "dev", Name: "dev-" + role, Role: role, IP: "172.30.0.2",
		APIServerEndpoint: "https://172.30.0.2:6443", PodSubnet: "10.244.0.0/16", PodCIDR: "10.244.0.0/24",
		ServiceSubnet: "10.96.0.0/16", DNSServiceIP: "10.96.0.10", ClusterDomain: "cluster.local",
		KubeProxyMode: "nftables", KubernetesVersion: "v1.37.2",
	}
}

var testRelease = versions.Release{Kubernetes: "v1.37.2", CoreDNS: "v1.15.0", Pause: "3.10.2"}

// fakeRunner records the commands it is asked to run; fail, if set,
// decides each one's outcome.
type fakeRunner struct {
	mu    sync.Mutex
	calls [][]string
	fail  func(call []string) error
}

func (f *fakeRunner) Run(ctx context.Context, path string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := append([]string{path}, args...)
	f.calls = append(f.calls, call)
	if f.fail != nil {
		return nil, f.fail(call)
	}
	return nil, nil
}

func (f *fakeRunner) RunInput(ctx context.Context, _ io.Reader, path string, args ...string) ([]byte, error) {
	return f.Run(ctx, path, args...)
}

func (f *fakeRunner) recorded() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func testBooter(t *testing.T, n *nodeconfig.Node) (*booter, *fakeRunner) {
	t.Helper()
	run := &fakeRunner{}
	return &booter{
		paths:      Paths{Root: t.TempDir()},
		node:       n,
		release:    testRelease,
		run:        run,
		self:       "/usr/local/bin/berth-node",
		log:        slog.New(slog.DiscardHandler),
		addonRetry: time.Millisecond,
	}, run
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func names(specs []supervisor.Spec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

func TestPlanStarts(t *testing.T) {
	const self = "/usr/local/bin/berth-node"
	for _, tc := range []struct {
		name                  string
		node                  *nodeconfig.Node
		early, late, afterAPI []string
		afterSystem           []string
	}{
		{
			name:        "control plane",
			node:        testNode(nodeconfig.RoleControlPlane),
			early:       []string{"containerd", "etcd", "kube-apiserver"},
			late:        []string{"kubelet"},
			afterAPI:    []string{"kube-proxy"},
			afterSystem: []string{"kube-controller-manager", "kube-scheduler"},
		},
		{
			name:     "worker",
			node:     testNode(nodeconfig.RoleWorker),
			early:    []string{"containerd"},
			late:     []string{"kubelet"},
			afterAPI: []string{"kube-proxy"},
		},
		{
			name: "worker without kube-proxy",
			node: func() *nodeconfig.Node {
				n := testNode(nodeconfig.RoleWorker)
				n.KubeProxyMode = "none"
				return n
			}(),
			early: []string{"containerd"},
			late:  []string{"kubelet"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planStarts(tc.node, self)
			if got := names(p.early); !slices.Equal(got, tc.early) {
				t.Errorf("started first: %v, want %v", got, tc.early)
			}
			if got := names(p.late); !slices.Equal(got, tc.late) {
				t.Errorf("started once containerd is up: %v, want %v", got, tc.late)
			}
			if got := names(p.afterAPI); !slices.Equal(got, tc.afterAPI) {
				t.Errorf("started once the API server is ready: %v, want %v", got, tc.afterAPI)
			}
			if got := names(p.afterSystem); !slices.Equal(got, tc.afterSystem) {
				t.Errorf("started once kube-system exists: %v, want %v", got, tc.afterSystem)
			}
			for _, s := range slices.Concat(p.early, p.late, p.afterAPI, p.afterSystem) {
				if s.Name == "containerd" {
					if s.Path != ContainerdBin || !slices.Equal(s.Args, []string{"--config", "/etc/containerd/config.toml"}) {
						t.Errorf("containerd runs %s %v", s.Path, s.Args)
					}
					continue
				}
				// Every Kubernetes component is the multicall berth-node.
				if s.Path != self || len(s.Args) == 0 || s.Args[0] != s.Name {
					t.Errorf("%s runs %s %v", s.Name, s.Path, s.Args)
				}
			}
		})
	}
	// The components that hold state get time to stop cleanly.
	for _, s := range planStarts(testNode(nodeconfig.RoleControlPlane), self).early {
		if want := map[string]bool{"containerd": true, "etcd": true, "kube-apiserver": true}[s.Name]; want != (s.StopTimeout == 10*time.Second) {
			t.Errorf("%s: stop timeout %v", s.Name, s.StopTimeout)
		}
	}
}

func TestPaths(t *testing.T) {
	if got := (Paths{Root: "/"}).KubeletConfig(); got != "/var/lib/kubelet/config.yaml" {
		t.Errorf("kubelet config at / = %s", got)
	}
	if got := (Paths{}).ImagesDir(); got != "/opt/berth/images" {
		t.Errorf("images with an empty root = %s", got)
	}
	if got := (Paths{Root: "/tmp/x"}).NodeConfig(); got != "/tmp/x/etc/berth/node.json" {
		t.Errorf("node config under /tmp/x = %s", got)
	}
}

func TestNodeRelease(t *testing.T) {
	// A test binary is not stamped with a Kubernetes version: the node
	// configuration's is used.
	n := testNode(nodeconfig.RoleWorker)
	n.KubernetesVersion = versions.Releases[len(versions.Releases)-1].Kubernetes
	r, err := nodeRelease(n)
	if err != nil || r != versions.Releases[len(versions.Releases)-1] {
		t.Errorf("release = %+v, %v; want %+v", r, err, versions.Releases[len(versions.Releases)-1])
	}
	n.KubernetesVersion = "v1.2.3"
	if _, err := nodeRelease(n); err == nil {
		t.Error("an unsupported version was accepted")
	}
}

func TestArchives(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"storage.tar", "pause.tar", "coredns.tar", "README", "helper.tar.gz"} {
		writeFile(t, filepath.Join(dir, name), "x")
	}
	sandbox, err := archives(dir, sandboxImage)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "pause.tar")}; !slices.Equal(sandbox, want) {
		t.Errorf("sandbox archives = %v, want %v", sandbox, want)
	}
	pods, err := archives(dir, podImages)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "coredns.tar"), filepath.Join(dir, "storage.tar")}; !slices.Equal(pods, want) {
		t.Errorf("pod archives = %v, want %v", pods, want)
	}
	if none, err := archives(filepath.Join(dir, "missing"), podImages); err != nil || len(none) != 0 {
		t.Errorf("archives of a missing directory = %v, %v", none, err)
	}
}

func TestImportImages(t *testing.T) {
	b, run := testBooter(t, testNode(nodeconfig.RoleWorker))
	for _, name := range []string{"pause.tar", "coredns.tar", "storage.tar"} {
		writeFile(t, filepath.Join(b.paths.ImagesDir(), name), "x")
	}
	run.fail = func(call []string) error {
		if strings.HasSuffix(call[len(call)-1], "coredns.tar") {
			return errors.New("exit status 1")
		}
		return nil
	}
	if err := b.importImages(context.Background(), sandboxImage); err != nil {
		t.Fatal(err)
	}
	err := b.importImages(context.Background(), podImages)
	if err == nil || !strings.Contains(err.Error(), "importing coredns.tar: exit status 1") {
		t.Errorf("err = %v, want coredns.tar's failure", err)
	}
	socket := b.paths.ContainerdSocket()
	var want [][]string
	for _, name := range []string{"pause.tar", "coredns.tar", "storage.tar"} {
		want = append(want, []string{CtrBin, "--address", socket, "--namespace", "k8s.io", "images", "import", "--local", filepath.Join(b.paths.ImagesDir(), name)})
	}
	if got := run.recorded(); !reflect.DeepEqual(got, want) {
		t.Errorf("commands:\n%v\nwant (a failed import does not stop the next):\n%v", got, want)
	}
}

func TestWriteConfigs(t *testing.T) {
	b, _ := testBooter(t, testNode(nodeconfig.RoleWorker))
	writeFile(t, b.paths.HostResolvConf(), "nameserver 127.0.0.11\noptions ndots:0\n")
	writeFile(t, b.paths.RouteTable(), "Iface\tDestination\tGateway \tFlags\neth0\t00000000\t01001EAC\t0003\n")
	if err := b.writeConfigs(1); err != nil {
		t.Fatal(err)
	}
	read := func(path string) string {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got := read(b.paths.PodResolvConf()); got != "nameserver 172.30.0.1\noptions ndots:0\n" {
		t.Errorf("pods' resolv.conf = %q", got)
	}
	if got := read(b.paths.ContainerdConfig()); !strings.Contains(got, `sandbox = "registry.k8s.io/pause:3.10.2"`) {
		t.Errorf("containerd config lacks the release's sandbox image:\n%s", got)
	}
	var kubelet kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict([]byte(read(b.paths.KubeletConfig())), &kubelet); err != nil {
		t.Fatal(err)
	}
	if kubelet.FailCgroupV1 == nil || *kubelet.FailCgroupV1 {
		t.Errorf("kubelet config written for cgroup v1 has failCgroupV1 %v", kubelet.FailCgroupV1)
	}
	if got := read(b.paths.KubeProxyConfig()); !strings.Contains(got, "kind: KubeProxyConfiguration") {
		t.Errorf("kube-proxy config:\n%s", got)
	}
}

func TestApplyAddons(t *testing.T) {
	b, _ := testBooter(t, testNode(nodeconfig.RoleControlPlane))
	var calls [][][]byte
	apply := func(_ context.Context, files ...[]byte) error {
		calls = append(calls, files)
		if len(calls) < 3 {
			return errors.New("connection refused")
		}
		return nil
	}
	b.applyAddons(context.Background(), apply)

	entries, err := os.ReadDir(b.paths.AddonsDir())
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if want := []string{"coredns.yaml", "storage.yaml"}; !slices.Equal(files, want) {
		t.Errorf("add-on files = %v, want %v", files, want)
	}
	data, err := os.ReadFile(filepath.Join(b.paths.AddonsDir(), "coredns.yaml"))
	if err != nil || !strings.Contains(string(data), "image: "+testRelease.CoreDNSImage()) {
		t.Errorf("coredns.yaml does not run the release's CoreDNS (%v)", err)
	}
	if len(calls) != 3 {
		t.Fatalf("applied %d times, want 3 (two refusals, then success)", len(calls))
	}
	for _, c := range calls {
		// The files in name order: CoreDNS, then storage.
		if len(c) != 2 || !bytes.Equal(c[0], data) {
			t.Errorf("applied %d files, the first not coredns.yaml", len(c))
		}
	}
}

func TestApplyAddonsStopsWithContext(t *testing.T) {
	b, _ := testBooter(t, testNode(nodeconfig.RoleControlPlane))
	ctx, cancel := context.WithCancel(context.Background())
	apply := func(context.Context, ...[]byte) error {
		cancel()
		return errors.New("connection refused")
	}
	done := make(chan struct{})
	go func() {
		b.applyAddons(ctx, apply)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("applyAddons kept retrying after its context ended")
	}
}

func TestLabelRoles(t *testing.T) {
	node := func(name string, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	client := fake.NewClientset(
		node("cp", map[string]string{nodeconfig.LabelRole: "control-plane"}),
		node("w1", map[string]string{nodeconfig.LabelRole: "worker", "tier": "db"}),
		node("w2", map[string]string{nodeconfig.LabelRole: "worker", "node-role.kubernetes.io/worker": ""}),
		node("other", map[string]string{"tier": "web"}),
	)
	ctx := context.Background()
	labelRolesOnce(ctx, client, slog.New(slog.DiscardHandler))

	want := map[string]map[string]string{
		"cp":    {nodeconfig.LabelRole: "control-plane", "node-role.kubernetes.io/control-plane": ""},
		"w1":    {nodeconfig.LabelRole: "worker", "tier": "db", "node-role.kubernetes.io/worker": ""},
		"w2":    {nodeconfig.LabelRole: "worker", "node-role.kubernetes.io/worker": ""},
		"other": {"tier": "web"},
	}
	for name, labels := range want {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(n.Labels, labels) {
			t.Errorf("%s: labels %v, want %v", name, n.Labels, labels)
		}
	}
	// Nodes already labelled are not patched again.
	patches := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" {
			patches++
		}
	}
	if patches != 2 {
		t.Errorf("%d patches, want 2 (cp and w1)", patches)
	}
}

func TestWaitForSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containerd.sock")
	listening := make(chan net.Listener, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		l, err := net.Listen("unix", path)
		if err != nil {
			close(listening)
			return
		}
		listening <- l
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := waitForSocket(ctx, path)
	l, ok := <-listening
	if !ok {
		t.Fatal("could not listen on the socket")
	}
	l.Close()
	if err != nil {
		t.Fatalf("waiting for a socket that appears: %v", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := waitForSocket(ctx, filepath.Join(t.TempDir(), "never.sock")); err == nil {
		t.Error("waiting for a socket that never appears returned nil")
	}
}

func TestWriteConfigsAuthenticationOnControlPlanes(t *testing.T) {
	for _, role := range []string{nodeconfig.RoleControlPlane, nodeconfig.RoleWorker} {
		b, _ := testBooter(t, testNode(role))
		if err := b.writeConfigs(2); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(b.paths.at(cc.APIServerAuthenticationConfigPath))
		switch {
		case role == nodeconfig.RoleControlPlane && (err != nil || !strings.Contains(string(data), "path: /readyz")):
			t.Errorf("control plane: authentication configuration %q (%v)", data, err)
		case role == nodeconfig.RoleWorker && err == nil:
			t.Error("a worker was given the API server's authentication configuration")
		}
	}
}
