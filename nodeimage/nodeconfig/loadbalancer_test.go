package nodeconfig

import "testing"

func TestValidateLoadBalancerPool(t *testing.T) {
	base := Node{Name: "n", Role: RoleWorker, IP: "172.30.0.3", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/16", DNSServiceIP: "10.96.0.10", APIServerEndpoint: "https://172.30.0.2:6443"}
	for pool, ok := range map[string]bool{
		"":                          true,
		"172.30.0.128-172.30.0.254": true,
		"172.30.0.200-172.30.0.200": true,
		"172.30.0.128/25":           false, // the CLI writes ranges only
		"172.30.0.128":              false,
		"fd00::1-fd00::9":           false,
	} {
		n := base
		n.LoadBalancerPool = pool
		if err := n.Validate(); (err == nil) != ok {
			t.Errorf("pool %q: %v", pool, err)
		}
	}
}
