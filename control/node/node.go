// Package node is what PID 1 of a node container does: prepare the
// container, write every component's configuration, start the components
// in order under the supervisor, run the node agent, and stop everything
// in reverse order on SIGTERM.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/control/boot"
	cc "github.com/berth-dev/berth/control/componentconfig"
	"github.com/berth-dev/berth/control/nodeconfig"
	"github.com/berth-dev/berth/control/podnet"
	"github.com/berth-dev/berth/control/supervisor"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Binaries inside the node image.
const (
	ContainerdBin = "/usr/local/bin/containerd"
	CtrBin        = "/usr/local/bin/ctr"
	NFTBin        = "/usr/sbin/nft"
	// ImagesDir holds the OCI archives imported into containerd at boot.
	ImagesDir = "/opt/berth/images"
)

// Run boots the node and blocks until ctx is cancelled (SIGTERM), then
// shuts every component down.
func Run(ctx context.Context, log *slog.Logger) error {
	n, err := nodeconfig.Load(nodeconfig.Path)
	if err != nil {
		return err
	}
	log = log.With("node", n.Name)
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
	log.Info("node prepared", "role", n.Role, "ip", n.IP, "cgroup", cgroupVersion)
	if err := writeConfigs(n, cgroupVersion); err != nil {
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

	sup.Start(ctx, supervisor.Spec{Name: "containerd", Path: ContainerdBin, Args: []string{"--config", cc.ContainerdConfig}, StopTimeout: 10 * time.Second})
	if n.IsControlPlane() {
		sup.Start(ctx, supervisor.Spec{Name: "etcd", Path: self, Args: append([]string{"etcd"}, cc.Etcd(n)...), StopTimeout: 10 * time.Second})
		sup.Start(ctx, supervisor.Spec{Name: "kube-apiserver", Path: self, Args: append([]string{"kube-apiserver"}, cc.APIServer(n)...), StopTimeout: 10 * time.Second})
	}

	if n.IsControlPlane() {
		// The controllers wait for the API server themselves; starting them
		// now overlaps their start-up with the API server's. An early exit
		// (RBAC not yet in place) is absorbed by the restart backoff.
		sup.Start(ctx, supervisor.Spec{Name: "kube-controller-manager", Path: self, Args: append([]string{"kube-controller-manager"}, cc.ControllerManager(n)...)})
		sup.Start(ctx, supervisor.Spec{Name: "kube-scheduler", Path: self, Args: append([]string{"kube-scheduler"}, cc.Scheduler(n)...)})
	}

	if err := waitForSocket(ctx, cc.ContainerdSocket); err != nil {
		return fmt.Errorf("waiting for containerd: %w", err)
	}
	// The sandbox image first: the kubelet needs it for every pod. The
	// others are imported while the node is still waiting for its PodCIDR,
	// long before a pod can be scheduled on it.
	if err := importImages(ctx, sup, log, []string{"pause.tar"}); err != nil {
		log.Error("importing images", "err", err)
	}
	go func() {
		if err := importImages(ctx, sup, log, nil); err != nil {
			log.Error("importing images", "err", err)
		}
	}()
	// The pod network's configuration goes in before the kubelet starts:
	// containerd reports the network ready at the kubelet's first look,
	// and the node is Ready as soon as it registers.
	if n.PodCIDR != "" && !n.DisableDefaultCNI {
		if _, err := podnet.WriteCNIConfig(cc.CNIConfDir, n.PodCIDR); err != nil {
			log.Error("writing the CNI configuration", "err", err)
		}
	}
	sup.Start(ctx, supervisor.Spec{Name: "kubelet", Path: self, Args: append([]string{"kubelet"}, cc.Kubelet(n)...)})
	if n.KubeProxyMode != "none" {
		sup.Start(ctx, supervisor.Spec{Name: "kube-proxy", Path: self, Args: append([]string{"kube-proxy"}, cc.KubeProxy()...)})
	}

	var wg sync.WaitGroup
	if n.IsControlPlane() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runControlPlane(ctx, n, sup, self, log)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		runAgent(ctx, n, sup, log)
	}()

	<-ctx.Done()
	log.Info("shutting down")
	wg.Wait()
	return nil
}

// runControlPlane starts the controllers once the API server answers,
// then applies the add-ons and keeps node role labels in place.
func runControlPlane(ctx context.Context, n *nodeconfig.Node, sup *supervisor.Supervisor, self string, log *slog.Logger) {
	client, err := clientFor(nodeconfig.AdminKubeconfig)
	if err != nil {
		log.Error("loading admin kubeconfig", "err", err)
		return
	}
	if err := waitForAPIServer(ctx, client); err != nil {
		return
	}
	log.Info("API server ready")
	if len(n.PodCIDRs) > 0 {
		assigner := &podnet.PodCIDRAssigner{Client: client, CIDRs: n.PodCIDRs, Log: log.With("component", "podcidr")}
		go assigner.Run(ctx)
	}
	go applyAddons(ctx, n, sup, self, log)
	labelRoles(ctx, client, log)
}

func runAgent(ctx context.Context, n *nodeconfig.Node, sup *supervisor.Supervisor, log *slog.Logger) {
	// The agent reads every Node object. A kubelet may read only its own
	// (the Node authorizer), while kube-proxy's identity is bound to
	// system:node-proxier, which may list and watch nodes: reuse it.
	client, err := clientFor(nodeconfig.KubeProxyKubeconfig)
	if err != nil {
		log.Error("loading kube-proxy kubeconfig", "err", err)
		return
	}
	agent := &podnet.Agent{
		Client:     client,
		NodeName:   n.Name,
		NodeIP:     n.IP,
		PodSubnet:  n.PodSubnet,
		CNIConfDir: cc.CNIConfDir,
		ManageCNI:  !n.DisableDefaultCNI,
		Log:        log.With("component", "agent"),
		ApplyNFT: func(ctx context.Context, rules string) error {
			_, err := sup.RunInput(ctx, strings.NewReader(rules), NFTBin, "-f", "-")
			return err
		},
	}
	if err := agent.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("node agent stopped", "err", err)
	}
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	return kubernetes.NewForConfig(cfg)
}

func waitForAPIServer(ctx context.Context, client kubernetes.Interface) error {
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(reqCtx)
		return err == nil, nil
	})
}

func waitForSocket(ctx context.Context, path string) error {
	for {
		if conn, err := net.Dial("unix", path); err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// importImages loads pre-built pod images into containerd's k8s.io
// namespace, one after the other (parallel imports contend for the same
// lease). only names the archives to import; nil means all others.
func importImages(ctx context.Context, sup *supervisor.Supervisor, log *slog.Logger, only []string) error {
	all, err := filepath.Glob(filepath.Join(ImagesDir, "*.tar"))
	if err != nil {
		return err
	}
	var archives []string
	for _, a := range all {
		isOnly := false
		for _, o := range only {
			isOnly = isOnly || filepath.Base(a) == o
		}
		if (only == nil && filepath.Base(a) != "pause.tar") || isOnly {
			archives = append(archives, a)
		}
	}
	started := time.Now()
	var failed []string
	for _, archive := range archives {
		if _, err := sup.Run(ctx, CtrBin, "--address", cc.ContainerdSocket, "--namespace", "k8s.io", "images", "import", "--local", archive); err != nil {
			failed = append(failed, fmt.Sprintf("importing %s: %v", filepath.Base(archive), err))
		}
	}
	log.Info("images imported", "count", len(archives), "took", time.Since(started).Round(time.Millisecond))
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

func writeConfigs(n *nodeconfig.Node, cgroupVersion int) error {
	files := map[string]string{
		cc.ContainerdConfig:    cc.ContainerdConfigTOML(),
		cc.KubeletConfigPath:   cc.KubeletConfig(n, cgroupVersion),
		cc.KubeProxyConfigPath: cc.KubeProxyConfig(n),
		cc.ResolvConf:          resolvConf(n),
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// resolvConf is what pods with dnsPolicy Default (CoreDNS among them) get
// as upstream resolvers. Docker's embedded resolver (127.0.0.11) only
// answers inside the node's own network namespace, so loopback servers
// are replaced by the node's default gateway.
func resolvConf(n *nodeconfig.Node) string {
	data, _ := os.ReadFile("/etc/resolv.conf")
	return cc.PodResolvConf(string(data), defaultGateway())
}

func defaultGateway() string {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	return cc.DefaultGatewayFromProcRoute(string(data))
}
