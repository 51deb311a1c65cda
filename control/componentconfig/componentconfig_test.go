package componentconfig

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/control/nodeconfig"
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
}

func TestEtcdDefaultsToSingleMember(t *testing.T) {
	args := Etcd(testNode())
	has(t, args, "--initial-cluster=dev-control-plane=http://172.30.0.2:2380")
	n := testNode()
	n.EtcdInitialCluster = "a=http://1.1.1.1:2380,b=http://1.1.1.2:2380"
	has(t, Etcd(n), "--initial-cluster=a=http://1.1.1.1:2380,b=http://1.1.1.2:2380")
}

func TestKubeletConfig(t *testing.T) {
	v1 := KubeletConfig(testNode(), 1)
	for _, want := range []string{"failCgroupV1: false", "oomScoreAdj: 0", "- 10.96.0.10", "cgroupDriver: cgroupfs", `key: "node-role.kubernetes.io/control-plane"`, `effect: "NoSchedule"`, "A: true"} {
		if !strings.Contains(v1, want) {
			t.Errorf("kubelet config lacks %q:\n%s", want, v1)
		}
	}
	if strings.Contains(KubeletConfig(testNode(), 2), "failCgroupV1") {
		t.Error("failCgroupV1 set on a cgroup v2 host")
	}
	has(t, Kubelet(testNode()), "--node-labels=berth.dev/role=control-plane,tier=db")
}

func TestKubeProxyConfig(t *testing.T) {
	c := KubeProxyConfig(testNode())
	for _, want := range []string{"mode: nftables", "clusterCIDR: 10.244.0.0/16", "maxPerCore: 0", "metricsBindAddress: 127.0.0.1:10249"} {
		if !strings.Contains(c, want) {
			t.Errorf("kube-proxy config lacks %q", want)
		}
	}
}

func TestContainerdConfig(t *testing.T) {
	c := ContainerdConfigTOML()
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
