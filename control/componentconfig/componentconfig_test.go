package componentconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	apiserverapi "k8s.io/apiserver/pkg/apis/apiserver"
	apiserverinstall "k8s.io/apiserver/pkg/apis/apiserver/install"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	_ "k8s.io/kubernetes/pkg/features" // registers the kubelet's feature gates
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/scheme"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	proxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	proxyscheme "k8s.io/kubernetes/pkg/proxy/apis/config/scheme"
	proxyvalidation "k8s.io/kubernetes/pkg/proxy/apis/config/validation"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/control/boot"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

func testNode() *nodeconfig.Node {
	return &nodeconfig.Node{
		Cluster: "dev", Name: "dev-control-plane", Role: nodeconfig.RoleControlPlane, IP: "172.30.0.2",
		APIServerEndpoint: "https://172.30.0.2:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/16",
		DNSServiceIP: "10.96.0.10", ClusterDomain: "cluster.local", KubeProxyMode: "nftables",
		FeatureGates: map[string]bool{"B": false, "A": true}, Labels: map[string]string{"tier": "db"},
		Taints: []string{"node-role.kubernetes.io/control-plane:NoSchedule"},
	}
}

func has(t *testing.T, args []string, want string) {
	t.Helper()
	for _, a := range args {
		if a == want {
			return
		}
	}
	t.Errorf("missing %s in %v", want, args)
}

func TestAPIServerArgs(t *testing.T) {
	args := APIServer(testNode())
	has(t, args, "--advertise-address=172.30.0.2")
	has(t, args, "--service-cluster-ip-range=10.96.0.0/16")
	has(t, args, "--authorization-mode=Node,RBAC")
	has(t, args, "--feature-gates=A=true,B=false")
	has(t, args, "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt")
	// The API server verifies the kubelets' serving certificates and
	// reaches etcd over TLS with its own etcd client certificate.
	has(t, args, "--kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt")
	has(t, args, "--etcd-servers=https://127.0.0.1:2379")
	has(t, args, "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt")
	has(t, args, "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt")
	has(t, args, "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key")
}

func TestEtcdTLS(t *testing.T) {
	args := Etcd(testNode())
	for _, want := range []string{
		"--listen-client-urls=https://127.0.0.1:2379,https://172.30.0.2:2379",
		"--advertise-client-urls=https://172.30.0.2:2379",
		"--listen-peer-urls=https://172.30.0.2:2380",
		"--initial-advertise-peer-urls=https://172.30.0.2:2380",
		"--cert-file=/etc/kubernetes/pki/etcd/server.crt",
		"--key-file=/etc/kubernetes/pki/etcd/server.key",
		"--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
		"--client-cert-auth=true",
		"--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
		"--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
		"--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
		"--peer-client-cert-auth=true",
	} {
		has(t, args, want)
	}
	// Nothing but the loopback metrics listener is plain HTTP.
	for _, a := range args {
		if strings.Contains(a, "http://") && a != "--listen-metrics-urls=http://127.0.0.1:2381" {
			t.Errorf("plain HTTP in %s", a)
		}
	}
}

func TestEtcdDefaultsToSingleMember(t *testing.T) {
	args := Etcd(testNode())
	has(t, args, "--initial-cluster=dev-control-plane=https://172.30.0.2:2380")
	n := testNode()
	n.EtcdInitialCluster = "a=http://1.1.1.1:2380,b=http://1.1.1.2:2380"
	has(t, Etcd(n), "--initial-cluster=a=http://1.1.1.1:2380,b=http://1.1.1.2:2380")
}

// decodeKubeletConfig decodes a generated kubelet configuration strictly
// (an unknown or duplicated field is an error) into its typed struct.
func decodeKubeletConfig(t *testing.T, n *nodeconfig.Node, cgroupVersion int) *kubeletv1beta1.KubeletConfiguration {
	t.Helper()
	data, err := KubeletConfig(n, cgroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	var c kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("decoding the kubelet configuration strictly: %v\n%s", err, data)
	}
	return &c
}

func TestKubeletConfig(t *testing.T) {
	c := decodeKubeletConfig(t, testNode(), 1)
	if c.APIVersion != "kubelet.config.k8s.io/v1beta1" || c.Kind != "KubeletConfiguration" {
		t.Errorf("type = %s %s", c.APIVersion, c.Kind)
	}
	if c.FailCgroupV1 == nil || *c.FailCgroupV1 {
		t.Errorf("failCgroupV1 = %v on a cgroup v1 host, want false", c.FailCgroupV1)
	}
	if c.OOMScoreAdj == nil || *c.OOMScoreAdj != 0 {
		t.Errorf("oomScoreAdj = %v, want 0", c.OOMScoreAdj)
	}
	if c.CgroupDriver != "cgroupfs" {
		t.Errorf("cgroupDriver = %q", c.CgroupDriver)
	}
	if c.ContainerRuntimeEndpoint != "unix:///run/containerd/containerd.sock" {
		t.Errorf("containerRuntimeEndpoint = %q", c.ContainerRuntimeEndpoint)
	}
	if len(c.ClusterDNS) != 1 || c.ClusterDNS[0] != "10.96.0.10" || c.ClusterDomain != "cluster.local" {
		t.Errorf("cluster DNS = %v %q", c.ClusterDNS, c.ClusterDomain)
	}
	if c.ResolverConfig == nil || *c.ResolverConfig != ResolvConf {
		t.Errorf("resolvConf = %v", c.ResolverConfig)
	}
	if c.Authentication.Anonymous.Enabled == nil || *c.Authentication.Anonymous.Enabled ||
		c.Authentication.Webhook.Enabled == nil || !*c.Authentication.Webhook.Enabled ||
		c.Authentication.X509.ClientCAFile != "/etc/kubernetes/pki/ca.crt" || c.Authorization.Mode != "Webhook" {
		t.Errorf("authentication/authorization = %+v %+v", c.Authentication, c.Authorization)
	}
	if c.FailSwapOn == nil || *c.FailSwapOn || c.SerializeImagePulls == nil || *c.SerializeImagePulls {
		t.Errorf("failSwapOn = %v, serializeImagePulls = %v, want false", c.FailSwapOn, c.SerializeImagePulls)
	}
	if c.ImageGCHighThresholdPercent == nil || *c.ImageGCHighThresholdPercent != 100 {
		t.Errorf("imageGCHighThresholdPercent = %v", c.ImageGCHighThresholdPercent)
	}
	for _, signal := range []string{"nodefs.available", "nodefs.inodesFree", "imagefs.available"} {
		if c.EvictionHard[signal] != "0%" {
			t.Errorf("evictionHard[%s] = %q, want 0%%", signal, c.EvictionHard[signal])
		}
	}
	if c.NodeStatusUpdateFrequency.Duration != time.Second || c.NodeStatusReportFrequency.Duration != 10*time.Second {
		t.Errorf("node status frequencies = %v, %v", c.NodeStatusUpdateFrequency, c.NodeStatusReportFrequency)
	}
	wantTaints := []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
	if !reflect.DeepEqual(c.RegisterWithTaints, wantTaints) {
		t.Errorf("registerWithTaints = %+v, want %+v", c.RegisterWithTaints, wantTaints)
	}
	if !reflect.DeepEqual(c.FeatureGates, map[string]bool{"A": true, "B": false}) {
		t.Errorf("featureGates = %v", c.FeatureGates)
	}

	if v2 := decodeKubeletConfig(t, testNode(), 2); v2.FailCgroupV1 != nil {
		t.Errorf("failCgroupV1 = %v on a cgroup v2 host, want unset", *v2.FailCgroupV1)
	}
	n := testNode()
	n.FeatureGates, n.Taints = nil, nil
	if c := decodeKubeletConfig(t, n, 2); c.FeatureGates != nil || c.RegisterWithTaints != nil {
		t.Errorf("featureGates = %v, registerWithTaints = %v, want neither", c.FeatureGates, c.RegisterWithTaints)
	}
	has(t, Kubelet(testNode()), "--node-labels=berth.dev/role=control-plane,tier=db")
}

// TestKubeletAcceptsConfig loads the configuration the way the kubelet
// does (its own scheme, strict decoding, defaulting) and runs the
// kubelet's validation on the one written for this host's cgroup version
// (the validation looks at the host's cgroups too).
func TestKubeletAcceptsConfig(t *testing.T) {
	_, codecs, err := kubeletscheme.NewSchemeAndCodecs(serializer.EnableStrict)
	if err != nil {
		t.Fatal(err)
	}
	hostCgroupVersion := boot.CgroupVersion("/sys/fs/cgroup")
	for _, cgroupVersion := range []int{1, 2} {
		n := testNode()
		n.FeatureGates = nil // A and B are not gates the kubelet knows
		data, err := KubeletConfig(n, cgroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := codecs.UniversalDecoder().Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("cgroup v%d: the kubelet's decoder rejects the configuration: %v", cgroupVersion, err)
		}
		kc, ok := obj.(*kubeletconfig.KubeletConfiguration)
		if !ok {
			t.Fatalf("decoded a %T", obj)
		}
		if kc.OOMScoreAdj != 0 || kc.ImageGCHighThresholdPercent != 100 || kc.FailCgroupV1 != (cgroupVersion == 2) {
			t.Errorf("cgroup v%d: after defaulting oomScoreAdj = %d, imageGCHighThresholdPercent = %d, failCgroupV1 = %t",
				cgroupVersion, kc.OOMScoreAdj, kc.ImageGCHighThresholdPercent, kc.FailCgroupV1)
		}
		if cgroupVersion != hostCgroupVersion {
			continue
		}
		if err := kubeletvalidation.ValidateKubeletConfiguration(kc, utilfeature.DefaultFeatureGate); err != nil {
			t.Errorf("cgroup v%d: the kubelet's validation rejects the configuration: %v", cgroupVersion, err)
		}
	}
}

func TestKubeProxyConfig(t *testing.T) {
	data, err := KubeProxyConfig(testNode())
	if err != nil {
		t.Fatal(err)
	}
	var c kubeproxyv1alpha1.KubeProxyConfiguration
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("decoding the kube-proxy configuration strictly: %v\n%s", err, data)
	}
	if c.APIVersion != "kubeproxy.config.k8s.io/v1alpha1" || c.Kind != "KubeProxyConfiguration" {
		t.Errorf("type = %s %s", c.APIVersion, c.Kind)
	}
	if c.Mode != "nftables" || c.ClusterCIDR != "10.244.0.0/16" || c.HostnameOverride != "dev-control-plane" {
		t.Errorf("mode = %q, clusterCIDR = %q, hostnameOverride = %q", c.Mode, c.ClusterCIDR, c.HostnameOverride)
	}
	if c.ClientConnection.Kubeconfig != "/etc/kubernetes/kube-proxy.conf" {
		t.Errorf("kubeconfig = %q", c.ClientConnection.Kubeconfig)
	}
	if c.BindAddress != "0.0.0.0" || c.MetricsBindAddress != "127.0.0.1:10249" || c.HealthzBindAddress != "127.0.0.1:10256" {
		t.Errorf("addresses = %q %q %q", c.BindAddress, c.MetricsBindAddress, c.HealthzBindAddress)
	}
	ct := c.Conntrack
	if ct.MaxPerCore == nil || *ct.MaxPerCore != 0 ||
		ct.TCPEstablishedTimeout == nil || ct.TCPEstablishedTimeout.Duration != 0 ||
		ct.TCPCloseWaitTimeout == nil || ct.TCPCloseWaitTimeout.Duration != 0 {
		t.Errorf("conntrack = %+v, want maxPerCore and both TCP timeouts set to 0", ct)
	}
	if !reflect.DeepEqual(c.FeatureGates, map[string]bool{"A": true, "B": false}) {
		t.Errorf("featureGates = %v", c.FeatureGates)
	}

	n := testNode()
	n.KubeProxyMode = ""
	if c := KubeProxyConfiguration(n); c.Mode != "nftables" {
		t.Errorf("default mode = %q, want nftables", c.Mode)
	}
	n.KubeProxyMode = "iptables"
	if c := KubeProxyConfiguration(n); c.Mode != "iptables" {
		t.Errorf("mode = %q, want iptables", c.Mode)
	}
}

// TestKubeProxyAcceptsConfig loads the configuration the way kube-proxy
// does (its strict decoder and defaulting) and validates it.
func TestKubeProxyAcceptsConfig(t *testing.T) {
	for _, mode := range []string{"nftables", "iptables"} {
		n := testNode()
		n.FeatureGates = nil
		n.KubeProxyMode = mode
		data, err := KubeProxyConfig(n)
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := proxyscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("%s: kube-proxy's decoder rejects the configuration: %v", mode, err)
		}
		c, ok := obj.(*proxyconfig.KubeProxyConfiguration)
		if !ok {
			t.Fatalf("decoded a %T", obj)
		}
		if errs := proxyvalidation.Validate(c); len(errs) > 0 {
			t.Errorf("%s: kube-proxy's validation rejects the configuration: %v", mode, errs.ToAggregate())
		}
		if c.Linux.Conntrack.MaxPerCore == nil || *c.Linux.Conntrack.MaxPerCore != 0 {
			t.Errorf("%s: conntrack maxPerCore = %v after defaulting, want 0", mode, c.Linux.Conntrack.MaxPerCore)
		}
	}
}

func TestContainerdConfig(t *testing.T) {
	c := ContainerdConfigTOML(versions.Release{Kubernetes: "v1.37.2", Pause: "3.10.2"})
	for _, want := range []string{"restrict_oom_score_adj = true", `sandbox = "registry.k8s.io/pause:3.10.2"`, "SystemdCgroup = false", `config_path = "/etc/containerd/certs.d"`} {
		if !strings.Contains(c, want) {
			t.Errorf("containerd config lacks %q", want)
		}
	}
}

func TestPodResolvConf(t *testing.T) {
	got := PodResolvConf("# generated\nnameserver 127.0.0.11\nsearch example.test\noptions ndots:0\n", "172.30.0.1")
	want := "nameserver 172.30.0.1\nsearch example.test\noptions ndots:0\n"
	if got != want {
		t.Errorf("PodResolvConf = %q, want %q", got, want)
	}
	if got := PodResolvConf("nameserver 192.0.2.53\n", "172.30.0.1"); got != "nameserver 192.0.2.53\n" {
		t.Errorf("a reachable nameserver was replaced: %q", got)
	}
}

func TestDefaultGateway(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\n" +
		"eth0\t00001EAC\t00000000\t0001\n" +
		"eth0\t00000000\t01001EAC\t0003\n"
	if got := DefaultGatewayFromProcRoute(table); got != "172.30.0.1" {
		t.Errorf("gateway = %q", got)
	}
}

func TestControllerManagerLeavesPodCIDRsToBerth(t *testing.T) {
	full := ControllerManager(testNode())
	has(t, full, "--controllers=*,-node-ipam-controller,bootstrapsigner,tokencleaner")
	has(t, full, "--allocate-node-cidrs=false")
	has(t, full, "--cluster-cidr=10.244.0.0/16")
}

// TestAPIServerAuthenticationConfig decodes the API server's
// authentication configuration strictly, the way the API server does,
// and validates it: anonymous requests are allowed on the health paths
// only.
func TestAPIServerAuthenticationConfig(t *testing.T) {
	has(t, APIServer(testNode()), "--authentication-config=/etc/kubernetes/authentication-config.yaml")
	for _, a := range APIServer(testNode()) {
		if strings.HasPrefix(a, "--anonymous-auth") {
			t.Errorf("%s conflicts with the authentication configuration's anonymous section", a)
		}
	}
	data, err := APIServerAuthenticationConfig()
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	apiserverinstall.Install(scheme)
	obj, err := runtime.Decode(serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDecoder(), data)
	if err != nil {
		t.Fatalf("decoding:\n%s\n%v", data, err)
	}
	cfg, ok := obj.(*apiserverapi.AuthenticationConfiguration)
	if !ok {
		t.Fatalf("decoded a %T", obj)
	}
	if errs := apiservervalidation.ValidateAuthenticationConfiguration(authenticationcel.NewDefaultCompiler(), cfg, nil); len(errs) > 0 {
		t.Errorf("invalid: %v", errs.ToAggregate())
	}
	var paths []string
	for _, c := range cfg.Anonymous.Conditions {
		paths = append(paths, c.Path)
	}
	if !cfg.Anonymous.Enabled || !reflect.DeepEqual(paths, []string{"/livez", "/readyz", "/healthz"}) {
		t.Errorf("anonymous = %+v, want enabled for the health paths only", cfg.Anonymous)
	}
}
