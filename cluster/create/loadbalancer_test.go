package create

import (
	"errors"
	"net"
	"testing"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/internal/pki"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Every node learns MetalLB's pool: the upper half of the cluster network
// (172.30.9.0/24 in planFor), or none when the add-on is off.
func TestPlanLoadBalancerPool(t *testing.T) {
	cp, w := nodeconfig.RoleControlPlane, nodeconfig.RoleWorker
	for _, n := range planFor(t, cluster(t, cp, w, w)).Nodes {
		if n.Node.LoadBalancerPool != "172.30.9.128-172.30.9.254" {
			t.Errorf("%s: pool %q", n.Spec.Name, n.Node.LoadBalancerPool)
		}
		if err := n.Node.Validate(); err != nil {
			t.Errorf("%s: %v", n.Spec.Name, err)
		}
	}

	off := false
	c := cluster(t, cp, w)
	c.Networking.LoadBalancer = &off
	for _, n := range planFor(t, c).Nodes {
		if n.Node.LoadBalancerPool != "" {
			t.Errorf("%s: pool %q with networking.loadBalancer false", n.Spec.Name, n.Node.LoadBalancerPool)
		}
	}

	c = cluster(t, cp, cp, w)
	c.Networking.LoadBalancerPool = "172.30.9.200-172.30.9.201"
	if got := planFor(t, c).Nodes[2].Node.LoadBalancerPool; got != "172.30.9.200-172.30.9.201" {
		t.Errorf("configured pool: %q", got)
	}
}

// A pool on the nodes' addresses, or off the network, is refused before
// anything is made, naming the field.
func TestPlanRefusesABadPool(t *testing.T) {
	cp, w := nodeconfig.RoleControlPlane, nodeconfig.RoleWorker
	for _, pool := range []string{"172.30.9.3-172.30.9.10", "10.0.0.1-10.0.0.9"} {
		c := cluster(t, cp, w)
		c.Networking.LoadBalancerPool = pool
		_, err := planErr(t, c)
		var fe config.FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != "networking.loadBalancerPool" {
			t.Errorf("pool %s: %v", pool, err)
		}
	}
}

func planErr(t *testing.T, c *config.Cluster) (*Plan, error) {
	t.Helper()
	ca, err := pki.NewCluster()
	if err != nil {
		t.Fatal(err)
	}
	_, sn, _ := net.ParseCIDR("172.30.9.0/24")
	return plan(PlanInput{Config: c, Network: &provider.Network{Name: "berth-t", Subnet: sn, Gateway: provider.NthIP(sn, 1)}, PKI: ca, APIPort: 40000})
}
