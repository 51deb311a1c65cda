package docker

import (
	"errors"
	"net"
	"testing"
)

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestFreeSubnetSkipsUsedRanges(t *testing.T) {
	if got := FreeSubnet(nil); got.String() != "172.30.0.0/24" {
		t.Errorf("FreeSubnet(none used) = %s", got)
	}
	used := []*net.IPNet{cidr("172.30.0.0/24"), cidr("172.30.1.128/25"), cidr("172.17.0.0/16")}
	if got := FreeSubnet(used); got.String() != "172.30.2.0/24" {
		t.Errorf("FreeSubnet = %s, want 172.30.2.0/24", got)
	}
	// A network covering the whole first range pushes us to the second.
	if got := FreeSubnet([]*net.IPNet{cidr("172.16.0.0/12")}); got.String() != "10.210.0.0/24" {
		t.Errorf("FreeSubnet = %s, want 10.210.0.0/24", got)
	}
}

func TestIsPrivilegeRefusal(t *testing.T) {
	refused := errors.New(`Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown`)
	if !isPrivilegeRefusal(refused) {
		t.Error("the sandbox's refusal was not recognised")
	}
	if isPrivilegeRefusal(errors.New("No such image: berth/node:v1.36.3")) {
		t.Error("an unrelated error was taken for a refusal")
	}
}
