// Package componentconfig turns a node's configuration into the command
// lines and configuration files of the components berth-node runs. It is
// pure (except EtcdClientConfig, which loads credentials): nothing here
// touches the file system or starts a process, so every flag can be
// checked in a unit test.
package componentconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	componentbasev1alpha1 "k8s.io/component-base/config/v1alpha1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// Paths inside the node.
const (
	EtcdDataDir         = "/var/lib/etcd"
	KubeletDir          = "/var/lib/kubelet"
	KubeletConfigPath   = "/var/lib/kubelet/config.yaml"
	KubeProxyConfigPath = "/var/lib/kube-proxy/config.yaml"
	ContainerdConfig    = "/etc/containerd/config.toml"
	ContainerdSocket    = "/run/containerd/containerd.sock"
	ResolvConf          = "/etc/berth/resolv.conf"
	CNIConfDir          = "/etc/cni/net.d"
	RegistryConfigDir   = "/etc/containerd/certs.d"
	CNIBinDir           = "/opt/cni/bin"
)

func pki(name string) string { return filepath.Join(nodeconfig.PKIDir, name) }

// EtcdClientURL is where the API server on the same node reaches etcd.
const EtcdClientURL = "https://127.0.0.1:2379"

// etcd's identities under the PKI directory (kubeadm's layout): its CA,
// the member's serving and peer certificates, and the client
// certificates of the API server and of berth-node itself.
var (
	EtcdCACert          = pki("etcd/ca.crt")
	EtcdServerCert      = pki("etcd/server.crt")
	EtcdServerKey       = pki("etcd/server.key")
	EtcdPeerCert        = pki("etcd/peer.crt")
	EtcdPeerKey         = pki("etcd/peer.key")
	APIServerEtcdCert   = pki("apiserver-etcd-client.crt")
	APIServerEtcdKey    = pki("apiserver-etcd-client.key")
	EtcdHealthcheckCert = pki("etcd/healthcheck-client.crt")
	EtcdHealthcheckKey  = pki("etcd/healthcheck-client.key")
)

// Etcd returns etcd's arguments. Clients and peers speak TLS and must
// present a certificate from the etcd CA: clients on loopback (the API
// server) and on the node's address (other tools on the cluster
// network), peers on the node's address.
func Etcd(n *nodeconfig.Node) []string {
	peer := fmt.Sprintf("https://%s:2380", n.IP)
	initial := n.EtcdInitialCluster
	if initial == "" {
		initial = n.Name + "=" + peer
	}
	return []string{
		"--name=" + n.Name,
		"--data-dir=" + EtcdDataDir,
		"--listen-client-urls=" + EtcdClientURL + ",https://" + n.IP + ":2379",
		"--advertise-client-urls=https://" + n.IP + ":2379",
		"--cert-file=" + EtcdServerCert,
		"--key-file=" + EtcdServerKey,
		"--trusted-ca-file=" + EtcdCACert,
		"--client-cert-auth=true",
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--peer-cert-file=" + EtcdPeerCert,
		"--peer-key-file=" + EtcdPeerKey,
		"--peer-trusted-ca-file=" + EtcdCACert,
		"--peer-client-cert-auth=true",
		"--initial-cluster=" + initial,
		"--initial-cluster-state=new",
		"--initial-cluster-token=" + n.Cluster,
		// Metrics and /health stay plain HTTP on loopback (as kubeadm
		// has them): nothing off the node reaches them.
		"--listen-metrics-urls=http://127.0.0.1:2381",
		// A local cluster is disposable; skipping fsync makes etcd (and
		// so every API write) much faster on laptops and CI disks.
		"--unsafe-no-fsync=true",
		"--snapshot-count=10000",
		"--log-level=warn",
	}
}

// EtcdClientConfig is how a client inside a control-plane node (berth-node
// itself) reaches the node's etcd member: its endpoints and a TLS
// configuration that trusts only the etcd CA and presents berth-node's
// client certificate. Unlike the rest of this package it reads files:
// the certificate and key the CLI wrote into the node.
func EtcdClientConfig() (endpoints []string, tlsConfig *tls.Config, err error) {
	tlsConfig, err = etcdClientTLS(EtcdHealthcheckCert, EtcdHealthcheckKey, EtcdCACert)
	if err != nil {
		return nil, nil, fmt.Errorf("loading etcd client credentials: %w", err)
	}
	return []string{EtcdClientURL}, tlsConfig, nil
}

// etcdClientTLS is what etcd's transport.TLSInfo.ClientConfig builds for
// a client certificate and a CA, written out here: requiring
// go.etcd.io/etcd/client/pkg directly would pin its version in the build
// module of every Kubernetes release, while each release's etcd server
// needs its own (nodeimage/buildmodule.go).
func etcdClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// APIServer returns kube-apiserver's arguments.
func APIServer(n *nodeconfig.Node) []string {
	args := []string{
		"--advertise-address=" + n.IP,
		"--bind-address=0.0.0.0",
		fmt.Sprintf("--secure-port=%d", nodeconfig.APIServerPort),
		"--etcd-servers=" + EtcdClientURL,
		"--etcd-cafile=" + EtcdCACert,
		"--etcd-certfile=" + APIServerEtcdCert,
		"--etcd-keyfile=" + APIServerEtcdKey,
		"--allow-privileged=true",
		"--authorization-mode=Node,RBAC",
		// Anonymous requests only for the health endpoints: see
		// APIServerAuthenticationConfiguration.
		"--authentication-config=" + APIServerAuthenticationConfigPath,
		"--enable-admission-plugins=NodeRestriction",
		"--client-ca-file=" + pki("ca.crt"),
		"--tls-cert-file=" + pki("apiserver.crt"),
		"--tls-private-key-file=" + pki("apiserver.key"),
		"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		// The kubelets serve certificates from the cluster CA (issued at
		// create for their node name and address): verify them.
		"--kubelet-certificate-authority=" + pki("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc." + n.ClusterDomain,
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=" + n.ServiceSubnet,
		"--proxy-client-cert-file=" + pki("front-proxy-client.crt"),
		"--proxy-client-key-file=" + pki("front-proxy-client.key"),
		"--requestheader-client-ca-file=" + pki("front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--enable-aggregator-routing=true",
		"--profiling=false",
	}
	if fg := FeatureGates(n.FeatureGates); fg != "" {
		args = append(args, "--feature-gates="+fg)
	}
	if rc := joinMap(n.RuntimeConfig); rc != "" {
		args = append(args, "--runtime-config="+rc)
	}
	return args
}

// APIServerAuthenticationConfigPath is the API server's structured
// authentication configuration.
const APIServerAuthenticationConfigPath = "/etc/kubernetes/authentication-config.yaml"

// AnonymousPaths are the only paths the API server answers for a client
// that presents no credentials: the health checks load balancers and
// probes use, without credentials (kubeadm's recommendation).
var AnonymousPaths = []string{"/livez", "/readyz", "/healthz"}

// APIServerAuthenticationConfiguration returns the API server's
// authentication configuration: anonymous authentication only on
// AnonymousPaths, so an anonymous client learns nothing else (not even
// /version or discovery).
func APIServerAuthenticationConfiguration() *apiserverv1.AuthenticationConfiguration {
	c := &apiserverv1.AuthenticationConfiguration{
		TypeMeta:  metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "AuthenticationConfiguration"},
		Anonymous: &apiserverv1.AnonymousAuthConfig{Enabled: true},
	}
	for _, p := range AnonymousPaths {
		c.Anonymous.Conditions = append(c.Anonymous.Conditions, apiserverv1.AnonymousAuthCondition{Path: p})
	}
	return c
}

// APIServerAuthenticationConfig returns the file at
// APIServerAuthenticationConfigPath.
func APIServerAuthenticationConfig() ([]byte, error) {
	data, err := yaml.Marshal(APIServerAuthenticationConfiguration())
	if err != nil {
		return nil, fmt.Errorf("encoding the API server's authentication configuration: %w", err)
	}
	return data, nil
}

// NodeIPAMController is the controller-manager's PodCIDR allocator. berth
// does not run it: PodCIDRs are chosen at create and set by berth-node
// (podnet.PodCIDRAssigner), so a node's CNI configuration exists before
// its kubelet starts.
const NodeIPAMController = "node-ipam-controller"

// ControllerManager returns kube-controller-manager's arguments: every
// controller except node IPAM.
func ControllerManager(n *nodeconfig.Node) []string {
	kc := nodeconfig.ControllerManagerKubeconfig
	args := []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--secure-port=10257",
		// Issued at create (pki.LocalServing); without it the component
		// generates a self-signed RSA pair at every start.
		"--tls-cert-file=" + pki("kube-controller-manager.crt"),
		"--tls-private-key-file=" + pki("kube-controller-manager.key"),
		"--leader-elect=true",
		"--allocate-node-cidrs=false",
		"--cluster-cidr=" + n.PodSubnet,
		"--service-cluster-ip-range=" + n.ServiceSubnet,
		"--cluster-name=" + n.Cluster,
		"--cluster-signing-cert-file=" + pki("ca.crt"),
		"--cluster-signing-key-file=" + pki("ca.key"),
		"--root-ca-file=" + pki("ca.crt"),
		"--service-account-private-key-file=" + pki("sa.key"),
		"--requestheader-client-ca-file=" + pki("front-proxy-ca.crt"),
		// Per-controller service-account credentials cost a ServiceAccount
		// and a TokenRequest round trip for each of ~40 controllers, one
		// after the other, before any controller starts: ~5 s of every
		// create on two cores. The controller-manager holds the cluster CA
		// key anyway, so its own certificate is issued in system:masters
		// and every controller uses it.
		"--use-service-account-credentials=false",
		"--controllers=*,-" + NodeIPAMController + ",bootstrapsigner,tokencleaner",
		// Each controller's client is limited to 20 requests/s (burst 30)
		// by default, sized for a shared production API server: a
		// ReplicaSet of 100 pods took 3.5 s of creates alone. berth's API
		// server serves one user.
		"--kube-api-qps=100",
		"--kube-api-burst=200",
		"--profiling=false",
	}
	if fg := FeatureGates(n.FeatureGates); fg != "" {
		args = append(args, "--feature-gates="+fg)
	}
	return args
}

// Scheduler returns kube-scheduler's arguments.
func Scheduler(n *nodeconfig.Node) []string {
	kc := nodeconfig.SchedulerKubeconfig
	args := []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--tls-cert-file=" + pki("kube-scheduler.crt"),
		"--tls-private-key-file=" + pki("kube-scheduler.key"),
		"--leader-elect=true",
		"--profiling=false",
	}
	if fg := FeatureGates(n.FeatureGates); fg != "" {
		args = append(args, "--feature-gates="+fg)
	}
	return args
}

// Kubelet returns the kubelet's arguments; its configuration file comes
// from KubeletConfig.
func Kubelet(n *nodeconfig.Node) []string {
	args := []string{
		"--config=" + KubeletConfigPath,
		"--kubeconfig=" + nodeconfig.KubeletKubeconfig,
		"--hostname-override=" + n.Name,
		"--node-ip=" + n.IP,
	}
	if labels := NodeLabels(n); labels != "" {
		args = append(args, "--node-labels="+labels)
	}
	return args
}

// NodeLabels returns the kubelet's --node-labels value.
func NodeLabels(n *nodeconfig.Node) string {
	labels := map[string]string{nodeconfig.LabelRole: n.Role}
	for k, v := range n.Labels {
		labels[k] = v
	}
	return joinMap(labels)
}

// KubeletConfiguration returns the kubelet's configuration.
func KubeletConfiguration(n *nodeconfig.Node, cgroupVersion int) *kubeletv1beta1.KubeletConfiguration {
	c := &kubeletv1beta1.KubeletConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: kubeletv1beta1.SchemeGroupVersion.String(), Kind: "KubeletConfiguration"},
		Authentication: kubeletv1beta1.KubeletAuthentication{
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: new(false)},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: new(true)},
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: pki("ca.crt")},
		},
		Authorization:            kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		CgroupDriver:             "cgroupfs",
		ContainerRuntimeEndpoint: "unix://" + ContainerdSocket,
		ClusterDNS:               []string{n.DNSServiceIP},
		ClusterDomain:            n.ClusterDomain,
		ResolverConfig:           new(ResolvConf),
		TLSCertFile:              pki("kubelet.crt"),
		TLSPrivateKeyFile:        pki("kubelet.key"),
		FailSwapOn:               new(false),
		// Without CAP_SYS_RESOURCE the kubelet may not lower its own OOM
		// score to its default of -999.
		OOMScoreAdj:                 new(int32(0)),
		SerializeImagePulls:         new(false),
		ImageGCHighThresholdPercent: new(int32(100)),
		// A node shares the host's disks: never evict for disk pressure.
		EvictionHard: map[string]string{
			"nodefs.available":  "0%",
			"nodefs.inodesFree": "0%",
			"imagefs.available": "0%",
		},
		HealthzBindAddress: "127.0.0.1",
		// Status is computed every second (posted only when it changes, or
		// every 10s), so a node turns Ready as soon as its pod network is
		// configured.
		NodeStatusUpdateFrequency: metav1.Duration{Duration: time.Second},
		NodeStatusReportFrequency: metav1.Duration{Duration: 10 * time.Second},
	}
	if cgroupVersion == 1 {
		// The kubelet refuses cgroup v1 unless told otherwise.
		c.FailCgroupV1 = new(false)
	}
	if len(n.FeatureGates) > 0 {
		c.FeatureGates = maps.Clone(n.FeatureGates)
	}
	for _, t := range n.Taints {
		key, value, effect := ParseTaint(t)
		c.RegisterWithTaints = append(c.RegisterWithTaints, corev1.Taint{Key: key, Value: value, Effect: corev1.TaintEffect(effect)})
	}
	return c
}

// KubeletConfig returns the kubelet's configuration file.
func KubeletConfig(n *nodeconfig.Node, cgroupVersion int) ([]byte, error) {
	data, err := yaml.Marshal(KubeletConfiguration(n, cgroupVersion))
	if err != nil {
		return nil, fmt.Errorf("encoding the kubelet configuration: %w", err)
	}
	return data, nil
}

// ParseTaint splits key=value:Effect (value optional).
func ParseTaint(t string) (key, value, effect string) {
	kv, effect, _ := strings.Cut(t, ":")
	key, value, _ = strings.Cut(kv, "=")
	return key, value, effect
}

// kubeProxyMinSync is kube-proxy's minimum time between rule syncs.
const kubeProxyMinSync = 100 * time.Millisecond

// KubeProxy returns kube-proxy's arguments.
func KubeProxy() []string {
	return []string{"--config=" + KubeProxyConfigPath}
}

// KubeProxyConfiguration returns kube-proxy's configuration.
func KubeProxyConfiguration(n *nodeconfig.Node) *kubeproxyv1alpha1.KubeProxyConfiguration {
	mode := n.KubeProxyMode
	if mode == "" {
		mode = "nftables"
	}
	c := &kubeproxyv1alpha1.KubeProxyConfiguration{
		TypeMeta:           metav1.TypeMeta{APIVersion: kubeproxyv1alpha1.SchemeGroupVersion.String(), Kind: "KubeProxyConfiguration"},
		ClientConnection:   componentbasev1alpha1.ClientConnectionConfiguration{Kubeconfig: nodeconfig.KubeProxyKubeconfig},
		Mode:               kubeproxyv1alpha1.ProxyMode(mode),
		ClusterCIDR:        n.PodSubnet,
		HostnameOverride:   n.Name,
		BindAddress:        "0.0.0.0",
		MetricsBindAddress: "127.0.0.1:10249",
		HealthzBindAddress: "127.0.0.1:10256",
		// A new Service or endpoint reaches the node's rules within 0.1 s
		// instead of waiting out upstream's 1 s between syncs: on a
		// cluster that is starting, kube-proxy has just synced for the
		// previous change most of the time, so the kube-dns endpoint (the
		// last step of time-to-k8s) and an app's first NodePort waited up
		// to a second each. A local cluster's rule set is small (a sync is
		// milliseconds), so syncing more often costs little.
		NFTables: kubeproxyv1alpha1.KubeProxyNFTablesConfiguration{MinSyncPeriod: metav1.Duration{Duration: kubeProxyMinSync}},
		IPTables: kubeproxyv1alpha1.KubeProxyIPTablesConfiguration{MinSyncPeriod: metav1.Duration{Duration: kubeProxyMinSync}},
		// A node container may not change the host's conntrack table
		// size or timeouts: zero leaves them as they are.
		Conntrack: kubeproxyv1alpha1.KubeProxyConntrackConfiguration{
			MaxPerCore:            new(int32(0)),
			TCPEstablishedTimeout: &metav1.Duration{},
			TCPCloseWaitTimeout:   &metav1.Duration{},
		},
	}
	if len(n.FeatureGates) > 0 {
		c.FeatureGates = maps.Clone(n.FeatureGates)
	}
	return c
}

// KubeProxyConfig returns kube-proxy's configuration file.
func KubeProxyConfig(n *nodeconfig.Node) ([]byte, error) {
	data, err := yaml.Marshal(KubeProxyConfiguration(n))
	if err != nil {
		return nil, fmt.Errorf("encoding the kube-proxy configuration: %w", err)
	}
	return data, nil
}

// ContainerdConfigTOML returns containerd's configuration. Its sandbox
// image is r's pause image, which the node image carries.
func ContainerdConfigTOML(r versions.Release) string {
	return fmt.Sprintf(`version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = %q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %q

# Mirrors and registry settings: /etc/containerd/certs.d/<host>/hosts.toml,
# read at every pull (as kind and containerd's docs describe).
[plugins."io.containerd.cri.v1.images".registry]
  config_path = %q

[plugins."io.containerd.cri.v1.runtime"]
  # Without CAP_SYS_RESOURCE a sandbox may not lower its OOM score.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = [%q]
  conf_dir = %q

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "/usr/local/bin/runc"
`, ContainerdSocket, r.PauseImage(), RegistryConfigDir, CNIBinDir, CNIConfDir)
}

// FeatureGates renders gates as Name=bool,... in a stable order.
func FeatureGates(gates map[string]bool) string {
	var parts []string
	for _, k := range sortedKeys(gates) {
		parts = append(parts, fmt.Sprintf("%s=%t", k, gates[k]))
	}
	return strings.Join(parts, ",")
}

func joinMap(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// IdleGOGCEnv names the environment variable that, set to a percentage,
// makes a component lower its GOGC to it after its first minute
// (components.IdleAfter).
const IdleGOGCEnv = "BERTH_IDLE_GOGC"

// idleGOGC is each component's GOGC once start-up is over: half the heap
// headroom of Go's default. The same for all today; a component that
// measures better with another value gets its own entry.
var idleGOGC = map[string]int{
	"etcd":                    50,
	"kube-apiserver":          50,
	"kube-controller-manager": 50,
	"kube-scheduler":          50,
	"kubelet":                 50,
	"kube-proxy":              50,
}

// IdleMemoryLimitEnv names the environment variable that, set to a
// percentage, gives a component a memory limit once it is idle: the
// memory its runtime holds after the idle collection plus that share of
// its live heap, lifted while it is busy (components.runIdleLimit).
const IdleMemoryLimitEnv = "BERTH_IDLE_MEMLIMIT_HEADROOM"

// idleMemoryLimitHeadroom is, per component, the headroom of its idle
// memory limit. Only the API server, the one large heap: on 1+2 clusters
// without MetalLB (where the add-on apply fix changes nothing) it held
// 171–173 MiB against 178–185, for ~0.1 s more CPU a minute
// (docs/performance.md, 2026-11-30). 25 % left the limit above what it
// holds anyway.
var idleMemoryLimitHeadroom = map[string]int{
	"kube-apiserver": 10,
}

// GoRuntimeEnv returns the Go runtime environment for component name.
func GoRuntimeEnv(name string) []string {
	var env []string
	if v, ok := idleGOGC[name]; ok {
		env = append(env, fmt.Sprintf("%s=%d", IdleGOGCEnv, v))
	}
	if v, ok := idleMemoryLimitHeadroom[name]; ok {
		env = append(env, fmt.Sprintf("%s=%d", IdleMemoryLimitEnv, v))
	}
	return env
}
