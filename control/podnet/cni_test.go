package podnet

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestCNIConfig(t *testing.T) {
	data, err := CNIConfig("10.244.1.0/24", false)
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Ranges [][]struct{ Subnet string } `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) != 2 || conf.Plugins[0].Type != "bridge" || conf.Plugins[1].Type != "portmap" {
		t.Fatalf("unexpected plugin chain: %s", data)
	}
	if got := conf.Plugins[0].IPAM.Ranges[0][0].Subnet; got != "10.244.1.0/24" {
		t.Errorf("subnet = %q", got)
	}
	if _, err := CNIConfig("10.244.1.0", false); err == nil {
		t.Error("a non-CIDR pod range was accepted")
	}
	if strings.Contains(string(data), "sriov") {
		t.Errorf("a node without VFs runs the SR-IOV plugin: %s", data)
	}
}

func TestCNIConfigSRIOV(t *testing.T) {
	plain, err := CNIConfig("10.244.1.0/24", false)
	if err != nil {
		t.Fatal(err)
	}
	data, err := CNIConfig("10.244.1.0/24", true)
	if err != nil {
		t.Fatal(err)
	}
	var conf, plainConf struct {
		CNIVersion string           `json:"cniVersion"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(plain, &plainConf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) != 3 || conf.Plugins[2]["type"] != "berth-sriov" {
		t.Fatalf("the SR-IOV plugin does not end the chain: %s", data)
	}
	if !reflect.DeepEqual(conf.Plugins[:2], plainConf.Plugins) || conf.CNIVersion != plainConf.CNIVersion {
		t.Errorf("the SR-IOV plugin changed the rest of the chain:\n%s\nvs\n%s", data, plain)
	}
}

func TestRoutes(t *testing.T) {
	peers := []Peer{
		{PodCIDR: "10.244.0.0/24", NodeIP: "172.30.0.2"},
		{PodCIDR: "10.244.1.0/24", NodeIP: "172.30.0.3"},
		{PodCIDR: "", NodeIP: "172.30.0.4"},
		{PodCIDR: "10.244.3.0/24", NodeIP: ""},
	}
	routes := Routes("172.30.0.2", peers)
	if len(routes) != 1 {
		t.Fatalf("got %d routes, want 1: %+v", len(routes), routes)
	}
	if routes[0].Dst.String() != "10.244.1.0/24" || routes[0].Gateway.String() != "172.30.0.3" {
		t.Errorf("route = %s via %s", routes[0].Dst, routes[0].Gateway)
	}
}

func TestMasqueradeRules(t *testing.T) {
	rules, err := MasqueradeRules("10.244.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rules, "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade") {
		t.Errorf("rules lack the masquerade statement:\n%s", rules)
	}
	if _, err := MasqueradeRules("nonsense"); err == nil {
		t.Error("a bad subnet was accepted")
	}
}
