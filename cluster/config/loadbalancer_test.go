package config

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func cidr(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSplitNetwork(t *testing.T) {
	for _, tc := range []struct {
		subnet     string
		containers int
		lower      string
		pool       string
	}{
		{"172.30.0.0/24", 3, "172.30.0.0/25", "172.30.0.128-172.30.0.254"},
		{"172.30.7.0/24", 126, "172.30.7.0/25", "172.30.7.128-172.30.7.254"},
		{"10.210.0.0/16", 500, "10.210.0.0/17", "10.210.128.0-10.210.255.254"},
		{"192.168.5.0/28", 2, "192.168.5.0/29", "192.168.5.8-192.168.5.14"},
	} {
		lower, pool, err := SplitNetwork(cidr(t, tc.subnet), tc.containers)
		if err != nil {
			t.Errorf("%s, %d containers: %v", tc.subnet, tc.containers, err)
			continue
		}
		if lower.String() != tc.lower || pool.String() != tc.pool {
			t.Errorf("%s, %d containers = %s + %s, want %s + %s", tc.subnet, tc.containers, lower, pool, tc.lower, tc.pool)
		}
		// No address is in both parts.
		if first := net.IP(pool.First.AsSlice()); lower.Contains(first) {
			t.Errorf("%s: pool %s starts inside the container range %s", tc.subnet, pool, lower)
		}
	}
	// The lower half of a /24 holds 126 containers beside the network
	// address and the gateway.
	if _, _, err := SplitNetwork(cidr(t, "172.30.0.0/24"), 127); err == nil {
		t.Error("127 containers fit in 172.30.0.0/25")
	}
	if _, _, err := SplitNetwork(cidr(t, "172.30.0.0/30"), 1); err == nil {
		t.Error("a /30 was split")
	}
}

// Nodes take the addresses after the gateway: every one of them is in
// the part Docker hands out, never in the pool.
func TestNodeAddressesStayBelowThePool(t *testing.T) {
	subnet := cidr(t, "172.30.0.0/24")
	lower, pool, err := SplitNetwork(subnet, 126)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 127; i++ { // the gateway, then 126 nodes and helpers
		ip := net.IPv4(172, 30, 0, byte(i))
		if !lower.Contains(ip) {
			t.Errorf("%s is outside the container range %s", ip, lower)
		}
		if a, _ := netipAddr(ip); pool.Contains(a) {
			t.Errorf("%s is in the pool %s", ip, pool)
		}
	}
}

func TestParseAddressRange(t *testing.T) {
	for in, want := range map[string]string{
		"172.30.0.200-172.30.0.250":    "172.30.0.200-172.30.0.250",
		" 172.30.0.200 - 172.30.0.200": "172.30.0.200-172.30.0.200",
		"172.30.0.192/26":              "172.30.0.192-172.30.0.255",
		"172.30.0.193/26":              "172.30.0.192-172.30.0.255",
		"172.30.0.9/32":                "172.30.0.9-172.30.0.9",
	} {
		got, err := ParseAddressRange(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseAddressRange(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "172.30.0.250-172.30.0.200", "fd00::1-fd00::9", "fd00::/120", "172.30.0.1", "a-b", "172.30.0.0/33"} {
		if r, err := ParseAddressRange(in); err == nil {
			t.Errorf("ParseAddressRange(%q) = %s, want an error", in, r)
		}
	}
	if n := (AddressRange{mustAddr(t, "172.30.0.128"), mustAddr(t, "172.30.0.254")}).Size(); n != 127 {
		t.Errorf("size = %d, want 127", n)
	}
}

func TestLoadBalancerPoolFor(t *testing.T) {
	subnet := cidr(t, "172.30.0.0/24")
	taken := []net.IP{net.IPv4(172, 30, 0, 1), net.IPv4(172, 30, 0, 2), net.IPv4(172, 30, 0, 3), net.IPv4(172, 30, 0, 4)}
	off := false
	for _, tc := range []struct {
		name    string
		nw      Networking
		want    string
		wantErr string
	}{
		{name: "default", want: "172.30.0.128-172.30.0.254"},
		{name: "off", nw: Networking{LoadBalancer: &off}, want: ""},
		{name: "range", nw: Networking{LoadBalancerPool: "172.30.0.200-172.30.0.210"}, want: "172.30.0.200-172.30.0.210"},
		{name: "cidr", nw: Networking{LoadBalancerPool: "172.30.0.240/29"}, want: "172.30.0.240-172.30.0.247"},
		{name: "one address", nw: Networking{LoadBalancerPool: "172.30.0.250/32"}, want: "172.30.0.250-172.30.0.250"},
		{name: "low but clear of the nodes", nw: Networking{LoadBalancerPool: "172.30.0.50-172.30.0.60"}, want: "172.30.0.50-172.30.0.60"},
		{name: "outside", nw: Networking{LoadBalancerPool: "172.30.1.10-172.30.1.20"}, wantErr: "is outside the cluster network 172.30.0.0/24"},
		{name: "straddles", nw: Networking{LoadBalancerPool: "172.30.0.250-172.30.1.5"}, wantErr: "is outside the cluster network"},
		{name: "broadcast", nw: Networking{LoadBalancerPool: "172.30.0.192/26"}, wantErr: "is outside the cluster network"},
		{name: "network address", nw: Networking{LoadBalancerPool: "172.30.0.0-172.30.0.0"}, wantErr: "is outside the cluster network"},
		{name: "nodes", nw: Networking{LoadBalancerPool: "172.30.0.3-172.30.0.20"}, wantErr: "overlaps 172.30.0.3"},
		{name: "gateway", nw: Networking{LoadBalancerPool: "172.30.0.1/32"}, wantErr: "overlaps 172.30.0.1"},
		{name: "syntax", nw: Networking{LoadBalancerPool: "lots"}, wantErr: "is neither an IPv4 CIDR nor a range"},
	} {
		c := &Cluster{Networking: tc.nw}
		got, err := c.LoadBalancerPoolFor(subnet, taken)
		if tc.wantErr != "" {
			var fe FieldErrors
			if err == nil || !errors.As(err, &fe) || fe[0].Field != "networking.loadBalancerPool" || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %q, %v; want an error on networking.loadBalancerPool containing %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestValidateLoadBalancer(t *testing.T) {
	off := false
	for _, tc := range []struct {
		nw      Networking
		wantErr string
	}{
		{nw: Networking{}},
		{nw: Networking{LoadBalancerPool: "172.30.0.200-172.30.0.210"}},
		{nw: Networking{LoadBalancer: &off}},
		{nw: Networking{LoadBalancerPool: "172.30.0.210-172.30.0.200"}, wantErr: "networking.loadBalancerPool: \"172.30.0.210-172.30.0.200\" ends before it starts"},
		{nw: Networking{LoadBalancer: &off, LoadBalancerPool: "172.30.0.200/29"}, wantErr: "networking.loadBalancerPool: set while networking.loadBalancer is false"},
	} {
		c := Default()
		c.Networking.LoadBalancer = tc.nw.LoadBalancer
		c.Networking.LoadBalancerPool = tc.nw.LoadBalancerPool
		err := c.Validate()
		if tc.wantErr == "" && err != nil {
			t.Errorf("%+v: %v", tc.nw, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: error %v, want %q", tc.nw, err, tc.wantErr)
		}
	}
}

// The two fields load from a cluster file.
func TestLoadLoadBalancerFields(t *testing.T) {
	cfg, _, err := Load(strings.NewReader("apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnetworking:\n  loadBalancer: true\n  loadBalancerPool: 172.30.0.200-172.30.0.220\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Networking.LoadBalancerEnabled() || cfg.Networking.LoadBalancerPool != "172.30.0.200-172.30.0.220" {
		t.Errorf("networking = %+v", cfg.Networking)
	}
	cfg, _, err = Load(strings.NewReader("apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnetworking:\n  loadBalancer: false\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Networking.LoadBalancerEnabled() {
		t.Error("loadBalancer: false left MetalLB on")
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func netipAddr(ip net.IP) (netip.Addr, bool) { return netip.AddrFromSlice(ip.To4()) }
