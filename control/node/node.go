// Package node is what PID 1 of a node container does: prepare the
// container, write every component's configuration, start the components
// in order under the supervisor, run the node agent, and stop everything
// in reverse order on SIGTERM.
package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"

	"github.com/berth-dev/berth/control/addons"
	"github.com/berth-dev/berth/control/boot"
	cc "github.com/berth-dev/berth/control/componentconfig"
	"github.com/berth-dev/berth/control/podnet"
	"github.com/berth-dev/berth/control/sriov"
	"github.com/berth-dev/berth/control/supervisor"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// runner runs one-off commands to completion: the supervisor in a node,
// a fake in tests.
type runner interface {
	Run(ctx context.Context, path string, args ...string) ([]byte, error)
	RunInput(ctx context.Context, stdin io.Reader, path string, args ...string) ([]byte, error)
}

// booter holds what the boot steps share.
type booter struct {
	paths   Paths
	node    *nodeconfig.Node
	release versions.Release
	run     runner
	// self is the berth-node binary (every component).
	self string
	log  *slog.Logger
	// addonRetry is the pause between attempts to apply the add-ons.
	addonRetry time.Duration
}

// Run boots the node and blocks until ctx is cancelled (SIGTERM), then
// shuts every component down.
func Run(ctx context.Context, log *slog.Logger) error {
	p := Paths{Root: "/"}
	n, err := nodeconfig.Load(p.NodeConfig())
	if err != nil {
		return err
	}
	log = log.With("node", n.Name)
	release, err := nodeRelease(n)
	if err != nil {
		return err
	}
	if err := boot.PrepareMounts(); err != nil {
		return fmt.Errorf("preparing mounts: %w", err)
	}
	cgroupVersion, err := boot.SetupCgroups()
	if err != nil {
		return fmt.Errorf("setting up cgroups: %w", err)
	}
	if failed := boot.ApplySysctls(); len(failed) > 0 {
		log.Warn("some kernel parameters could not be set", "sysctls", failed)
	}
	log.Info("node prepared", "role", n.Role, "ip", n.IP, "cgroup", cgroupVersion, "kubernetes", release.Kubernetes)
	b := &booter{paths: p, node: n, release: release, log: log, addonRetry: 500 * time.Millisecond}
	if err := b.writeConfigs(cgroupVersion); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding berth-node: %w", err)
	}

	sup, err := supervisor.New(log)
	if err != nil {
		return err
	}
	defer sup.Shutdown()
	b.run, b.self = sup, self
	// The control endpoint: berth-node snapshot restore holds the API
	// server stopped through it.
	go func() {
		if err := sup.Serve(ctx, supervisor.ControlSocket); err != nil {
			log.Error("serving the supervisor's control endpoint", "err", err)
		}
	}()

	plan := planStarts(n, self)
	for _, spec := range plan.early {
		sup.Start(ctx, spec)
	}
	if err := waitForSocket(ctx, p.ContainerdSocket()); err != nil {
		return fmt.Errorf("waiting for containerd: %w", err)
	}
	// The sandbox image first: the kubelet needs it for every pod. The
	// others are imported while the node is still waiting for its PodCIDR,
	// long before a pod can be scheduled on it.
	if err := b.importImages(ctx, sandboxImage); err != nil {
		log.Error("importing images", "err", err)
	}
	go func() {
		if err := b.importImages(ctx, podImages); err != nil {
			log.Error("importing images", "err", err)
		}
	}()
	// The pod network's configuration goes in before the kubelet starts:
	// containerd reports the network ready at the kubelet's first look,
	// and the node is Ready as soon as it registers.
	if n.PodCIDR != "" && !n.DisableDefaultCNI {
		if _, err := podnet.WriteCNIConfig(p.CNIConfDir(), n.PodCIDR, sriov.HasNetdevice(n.SRIOV)); err != nil {
			log.Error("writing the CNI configuration", "err", err)
		}
	}
	for _, spec := range plan.late {
		sup.Start(ctx, spec)
	}

	var wg sync.WaitGroup
	if len(plan.afterAPI) > 0 {
		wg.Go(func() { b.startAfterAPI(ctx, sup, plan.afterAPI) })
	}
	if n.IsControlPlane() {
		wg.Go(func() { b.runControlPlane(ctx, sup, plan.afterSystem) })
	}
	wg.Go(func() { b.runAgent(ctx) })
	if len(n.SRIOV) > 0 {
		// The device plugins wait for the kubelet's registration socket
		// and keep registering whenever the kubelet restarts; a failure
		// is logged and retried, never fatal for the node.
		wg.Go(func() {
			sriov.Run(ctx, sriov.Options{VFs: n.SRIOV, Log: log.With("component", "sriov")})
		})
	}

	<-ctx.Done()
	log.Info("shutting down")
	wg.Wait()
	return nil
}

// nodeRelease returns the Kubernetes release this berth-node runs: the
// version the node image build stamped into it, or, in an unstamped
// development build, the version the node configuration names.
func nodeRelease(n *nodeconfig.Node) (versions.Release, error) {
	if r, err := versions.Resolve(version.Get().GitVersion); err == nil {
		return r, nil
	}
	r, err := versions.Resolve(n.KubernetesVersion)
	if err != nil {
		return versions.Release{}, fmt.Errorf("finding the node's Kubernetes release: %w", err)
	}
	return r, nil
}

// startPlan is the order in which Run starts a node's components.
type startPlan struct {
	// early start at once, one after the other: containerd and, on a
	// control-plane node, etcd, the API server and the controllers.
	early []supervisor.Spec
	// late start once containerd answers, the sandbox image is imported
	// and the pod network is configured: the kubelet.
	late []supervisor.Spec
	// afterAPI start once the API server's /readyz answers: kube-proxy.
	// Started earlier (with the kubelet, as before), its first list of
	// Nodes is refused until the API server has made the default RBAC
	// rules, and client-go's reflector backs off 1–3 s before it lists
	// again; kube-proxy writes no rule before that, so the first pods
	// waited for it (a bimodal 2 s in the bench's app phase) or started
	// before it and could not reach the API server's Service (MetalLB's
	// controller and local-path-provisioner exited, and restarted 10 s
	// later).
	afterAPI []supervisor.Spec
	// afterSystem start on a control-plane node once its API server's
	// /readyz answers and the kube-system namespace exists: the
	// controller-manager and the scheduler. Started with the API server
	// (as before), both met a serving API server without kube-system, so
	// their first leader-election attempt failed and client-go retried
	// only after its 2 s retry period; the controller-manager then polls
	// /healthz once a second before it starts a controller. Traced in the
	// bench (`-trace`): the first pods were created 1.2–3.3 s after
	// /readyz; started after it, the controllers run ~0.4 s after it.
	afterSystem []supervisor.Spec
}

// planStarts returns the components n runs, in start order; self is the
// berth-node binary, which every Kubernetes component is.
func planStarts(n *nodeconfig.Node, self string) startPlan {
	component := func(name string, args []string, stop time.Duration) supervisor.Spec {
		return supervisor.Spec{Name: name, Path: self, Args: append([]string{name}, args...), StopTimeout: stop, Env: cc.GoRuntimeEnv(name)}
	}
	var p startPlan
	p.early = append(p.early, supervisor.Spec{Name: "containerd", Path: ContainerdBin, Args: []string{"--config", cc.ContainerdConfig}, StopTimeout: 10 * time.Second})
	if n.IsControlPlane() {
		p.early = append(p.early,
			component("etcd", cc.Etcd(n), 10*time.Second),
			component("kube-apiserver", cc.APIServer(n), 10*time.Second),
		)
		p.afterSystem = append(p.afterSystem,
			component("kube-controller-manager", cc.ControllerManager(n), 0),
			component("kube-scheduler", cc.Scheduler(n), 0),
		)
	}
	p.late = append(p.late, component("kubelet", cc.Kubelet(n), 0))
	if n.KubeProxyMode != "none" {
		p.afterAPI = append(p.afterAPI, component("kube-proxy", cc.KubeProxy(), 0))
	}
	return p
}

// runControlPlane waits for the API server, then starts the controllers
// (specs), assigns PodCIDRs, applies the add-ons and keeps node role
// labels in place.
func (b *booter) runControlPlane(ctx context.Context, sup *supervisor.Supervisor, specs []supervisor.Spec) {
	client, err := clientFor(b.paths.AdminKubeconfig())
	if err != nil {
		b.log.Error("loading admin kubeconfig", "err", err)
		return
	}
	if err := waitForAPIServer(ctx, client); err != nil {
		return
	}
	b.log.Info("API server ready")
	if err := waitForNamespace(ctx, client, metav1.NamespaceSystem); err != nil {
		return
	}
	for _, spec := range specs {
		sup.Start(ctx, spec)
	}
	if len(b.node.PodCIDRs) > 0 {
		assigner := &podnet.PodCIDRAssigner{Client: client, CIDRs: b.node.PodCIDRs, Log: b.log.With("component", "podcidr")}
		go assigner.Run(ctx)
	}
	applier, err := addonApplier(b.paths.AdminKubeconfig())
	if err != nil {
		b.log.Error("loading admin kubeconfig", "err", err)
		return
	}
	go b.applyAddons(ctx, applier.Apply)
	labelRoles(ctx, client, b.log)
}

func (b *booter) runAgent(ctx context.Context) {
	// The agent reads every Node object. A kubelet may read only its own
	// (the Node authorizer), while kube-proxy's identity is bound to
	// system:node-proxier, which may list and watch nodes: reuse it.
	client, err := clientFor(b.paths.KubeProxyKubeconfig())
	if err != nil {
		b.log.Error("loading kube-proxy kubeconfig", "err", err)
		return
	}
	agent := &podnet.Agent{
		Client:     client,
		NodeName:   b.node.Name,
		NodeIP:     b.node.IP,
		PodSubnet:  b.node.PodSubnet,
		CNIConfDir: b.paths.CNIConfDir(),
		ManageCNI:  !b.node.DisableDefaultCNI,
		SRIOV:      sriov.HasNetdevice(b.node.SRIOV),
		Log:        b.log.With("component", "agent"),
		ApplyNFT: func(ctx context.Context, rules string) error {
			_, err := b.run.RunInput(ctx, strings.NewReader(rules), NFTBin, "-f", "-")
			return err
		},
	}
	if err := agent.Run(ctx); err != nil && ctx.Err() == nil {
		b.log.Error("node agent stopped", "err", err)
	}
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := restConfigFor(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func restConfigFor(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// addonApplier applies manifests with the admin kubeconfig, finding each
// kind's resource through (cached) discovery.
func addonApplier(kubeconfig string) (*addons.Applier, error) {
	cfg, err := restConfigFor(kubeconfig)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &addons.Applier{Client: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}, nil
}

// startAfterAPI starts specs once the API server's /readyz answers (asked
// with kube-proxy's credentials, which every node has).
func (b *booter) startAfterAPI(ctx context.Context, sup *supervisor.Supervisor, specs []supervisor.Spec) {
	client, err := clientFor(b.paths.KubeProxyKubeconfig())
	if err == nil {
		err = waitForAPIServer(ctx, client)
	}
	if err != nil {
		if ctx.Err() == nil {
			b.log.Error("waiting for the API server before starting kube-proxy", "err", err)
		}
		return
	}
	for _, spec := range specs {
		sup.Start(ctx, spec)
	}
}

func waitForAPIServer(ctx context.Context, client kubernetes.Interface) error {
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(reqCtx)
		return err == nil, nil
	})
}

// waitForNamespace returns once the namespace name exists. The API
// server creates the system namespaces from a post-start hook that
// /readyz does not wait for.
func waitForNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return err == nil, nil
	})
}

// waitForSocket returns once something accepts connections on the unix
// socket at path.
func waitForSocket(ctx context.Context, path string) error {
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
}

// writeConfigs writes the configuration files of containerd, the kubelet
// and kube-proxy, and the pods' resolv.conf.
func (b *booter) writeConfigs(cgroupVersion int) error {
	kubelet, err := cc.KubeletConfig(b.node, cgroupVersion)
	if err != nil {
		return err
	}
	kubeProxy, err := cc.KubeProxyConfig(b.node)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		b.paths.ContainerdConfig(): []byte(cc.ContainerdConfigTOML(b.release)),
		b.paths.KubeletConfig():    kubelet,
		b.paths.KubeProxyConfig():  kubeProxy,
		b.paths.PodResolvConf():    []byte(b.resolvConf()),
	}
	if b.node.IsControlPlane() {
		authn, err := cc.APIServerAuthenticationConfig()
		if err != nil {
			return err
		}
		files[b.paths.at(cc.APIServerAuthenticationConfigPath)] = authn
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// resolvConf is what pods with dnsPolicy Default (CoreDNS among them) get
// as upstream resolvers. Docker's embedded resolver (127.0.0.11) only
// answers inside the node's own network namespace, so loopback servers
// are replaced by the node's default gateway.
func (b *booter) resolvConf() string {
	data, _ := os.ReadFile(b.paths.HostResolvConf())
	return cc.PodResolvConf(string(data), b.defaultGateway())
}

func (b *booter) defaultGateway() string {
	data, err := os.ReadFile(b.paths.RouteTable())
	if err != nil {
		return ""
	}
	return cc.DefaultGatewayFromProcRoute(string(data))
}
