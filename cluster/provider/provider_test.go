package provider

import (
	"net"
	"testing"
)

func TestNodeIP(t *testing.T) {
	_, sn, _ := net.ParseCIDR("172.30.5.0/24")
	n := &Network{Subnet: sn}
	if got := n.NodeIP(0).String(); got != "172.30.5.2" {
		t.Errorf("NodeIP(0) = %s", got)
	}
	if got := n.NodeIP(3).String(); got != "172.30.5.5" {
		t.Errorf("NodeIP(3) = %s", got)
	}
}
