package config

import (
	"strings"
	"testing"
)

func TestLoadBerthConfig(t *testing.T) {
	in := `apiVersion: berth.dev/v1alpha1
kind: Cluster
name: dev
nodes:
- role: control-plane
- role: worker
  labels: {gpu: "true"}
networking:
  kubeProxyMode: iptables
`
	c, warnings, err := Load(strings.NewReader(in), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("unexpected warnings: %v", warnings)
	}
	if c.Name != "dev" || len(c.Nodes) != 2 || c.Nodes[1].Labels["gpu"] != "true" || c.Networking.KubeProxyMode != "iptables" {
		t.Errorf("decoded %+v", c)
	}
	if c.Networking.PodSubnet != DefaultPodSubnet {
		t.Error("defaults were not applied")
	}
}

func TestLoadRejectsWithFieldAndLine(t *testing.T) {
	cases := map[string]string{
		"unknown field": "apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnodes:\n- role: worker\n  colour: blue\n",
		"bad CIDR":      "apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnetworking:\n  podSubnet: 10.244.0.0\n",
		"bad role":      "apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnodes:\n- role: control-plane\n- role: boss\n",
		"wrong type":    "apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnetworking:\n  apiServerPort: lots\n",
	}
	want := map[string][]string{
		"unknown field": {"line 5", "colour"},
		"bad CIDR":      {"line 4", "networking.podSubnet"},
		"bad role":      {"line 5", "nodes[1].role"},
		"wrong type":    {"line 4", "lots"},
	}
	for name, in := range cases {
		_, _, err := Load(strings.NewReader(in), "c.yaml")
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, w := range want[name] {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q: %v", name, w, err)
			}
		}
	}
}

func TestLoadKindConfig(t *testing.T) {
	in := `kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: fromkind
nodes:
- role: control-plane
  image: kindest/node:v1.33.1
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
  extraPortMappings:
  - containerPort: 80
    hostPort: 8080
- role: worker
networking:
  kubeProxyMode: ipvs
`
	c, warnings, err := Load(strings.NewReader(in), "kind.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "fromkind" || len(c.Nodes) != 2 || c.Nodes[0].ExtraPortMappings[0].HostPort != 8080 {
		t.Errorf("translated %+v", c)
	}
	if c.Networking.KubeProxyMode != "nftables" {
		t.Errorf("ipvs became %q", c.Networking.KubeProxyMode)
	}
	if len(warnings) != 3 {
		t.Errorf("want 3 warnings (image, patches, ipvs), got %d: %v", len(warnings), warnings)
	}
	if _, _, err := Load(strings.NewReader("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  bogus: 1\n"), "k"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown kind field not rejected: %v", err)
	}
}
