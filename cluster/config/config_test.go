package config

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default configuration is invalid: %v", err)
	}
	if c.Name != "berth" || len(c.Nodes) != 1 || c.Nodes[0].Role != nodeconfig.RoleControlPlane {
		t.Errorf("unexpected default: %+v", c)
	}
	if c.Networking.APIServerAddress != "127.0.0.1" {
		t.Errorf("API server must listen on loopback by default, got %s", c.Networking.APIServerAddress)
	}
	if got := c.ServiceIP(10).String(); got != "10.96.0.10" {
		t.Errorf("DNS service IP = %s", got)
	}
}

func TestNodeNames(t *testing.T) {
	c := &Cluster{Name: "dev", Nodes: []Node{{Role: nodeconfig.RoleControlPlane}, {Role: nodeconfig.RoleWorker}, {Role: nodeconfig.RoleWorker}, {Role: nodeconfig.RoleControlPlane}}}
	got := strings.Join(c.NodeNames(), " ")
	want := "dev-control-plane dev-worker dev-worker2 dev-control-plane2"
	if got != want {
		t.Errorf("NodeNames = %s, want %s", got, want)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := map[string]func(*Cluster){
		"networking.podSubnet":                    func(c *Cluster) { c.Networking.PodSubnet = "10.244.0.0" },
		"networking.serviceSubnet: 10.244.0.0/20": func(c *Cluster) { c.Networking.ServiceSubnet = "10.244.0.0/20" },
		"nodes[1].role":                           func(c *Cluster) { c.Nodes = append(c.Nodes, Node{Role: "boss"}) },
		"nodes: a cluster needs":                  func(c *Cluster) { c.Nodes = []Node{{Role: nodeconfig.RoleWorker}} },
		"networking.kubeProxyMode":                func(c *Cluster) { c.Networking.KubeProxyMode = "ipvs" },
		"networking.podSubnet: 10.9.0.0/22 has room for 4 nodes": func(c *Cluster) {
			c.Networking.PodSubnet = "10.9.0.0/22"
			for range 4 {
				c.Nodes = append(c.Nodes, Node{Role: nodeconfig.RoleWorker})
			}
		},
		"nodes[0].extraPortMappings[1].hostPort": func(c *Cluster) {
			c.Nodes[0].ExtraPortMappings = []PortMapping{{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 81, HostPort: 8080}}
		},
		"name:": func(c *Cluster) { c.Name = "Bad_Name" },
	}
	for field, mutate := range cases {
		c := Default()
		mutate(c)
		c.SetDefaults()
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: invalid configuration accepted", field)
			continue
		}
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %q: %v", field, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"berth", "dev-1", "a"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "x-", "UPPER", "under_score", strings.Repeat("a", 41)} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
