package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// LoadBalancer Services get their addresses from a pool on the cluster's
// own Docker network, which every node is on and the host reaches: the
// network is split in two, the containers (nodes, the API load balancer,
// anything else attached) get the lower half — Docker's IPRange, so it
// never hands out an address of the upper half — and the pool is the
// upper half, less the broadcast address. networking.loadBalancerPool
// picks another range of the network.

// LoadBalancerEnabled reports whether the cluster runs MetalLB for
// LoadBalancer Services (networking.loadBalancer, default true).
func (n Networking) LoadBalancerEnabled() bool {
	return n.LoadBalancer == nil || *n.LoadBalancer
}

// AddressRange is an inclusive range of IPv4 addresses.
type AddressRange struct {
	First, Last netip.Addr
}

// String is the range as MetalLB's IPAddressPool takes it: "first-last".
func (r AddressRange) String() string { return r.First.String() + "-" + r.Last.String() }

// Contains reports whether a is in the range.
func (r AddressRange) Contains(a netip.Addr) bool {
	return a.Is4() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Size is the number of addresses in the range.
func (r AddressRange) Size() int { return int(toUint32(r.Last)-toUint32(r.First)) + 1 }

// ParseAddressRange parses a pool as networking.loadBalancerPool takes
// it: a CIDR (172.30.0.192/26) or a range "first-last"
// (172.30.0.200-172.30.0.250), IPv4.
func ParseAddressRange(s string) (AddressRange, error) {
	s = strings.TrimSpace(s)
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, errA := netip.ParseAddr(strings.TrimSpace(first))
		b, errB := netip.ParseAddr(strings.TrimSpace(last))
		if errA != nil || errB != nil || !a.Is4() || !b.Is4() {
			return AddressRange{}, fmt.Errorf("%q is not a range of IPv4 addresses (first-last)", s)
		}
		if b.Less(a) {
			return AddressRange{}, fmt.Errorf("%q ends before it starts", s)
		}
		return AddressRange{a, b}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return AddressRange{}, fmt.Errorf("%q is neither an IPv4 CIDR nor a range first-last", s)
	}
	return prefixRange(p.Masked()), nil
}

// ContainerRange is the part of a cluster network Docker hands out: its
// lower half.
func ContainerRange(subnet *net.IPNet) (*net.IPNet, error) {
	p, err := prefixOf(subnet)
	if err != nil {
		return nil, err
	}
	if p.Bits() >= 30 {
		return nil, fmt.Errorf("cluster network %s is too small to split", p)
	}
	lower := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	return &net.IPNet{IP: net.IP(lower.Addr().AsSlice()), Mask: net.CIDRMask(lower.Bits(), 32)}, nil
}

// SplitNetwork divides a cluster network between the containers and the
// LoadBalancer pool: containers is the lower half (Docker's IPRange),
// which must hold the network address, the gateway and the given number
// of container addresses (nodes and helpers); pool is the upper half
// without the broadcast address.
func SplitNetwork(subnet *net.IPNet, containerCount int) (containers *net.IPNet, pool AddressRange, err error) {
	containers, err = ContainerRange(subnet)
	if err != nil {
		return nil, AddressRange{}, err
	}
	lowerSize, _ := containers.Mask.Size()
	if room := 1<<(32-lowerSize) - 2; containerCount > room {
		return nil, AddressRange{}, fmt.Errorf("cluster network %s holds %d containers beside its LoadBalancer pool, not %d", subnet, room, containerCount)
	}
	p, _ := prefixOf(subnet)
	whole := prefixRange(p)
	upperFirst := fromUint32(toUint32(whole.First) + 1<<(32-lowerSize))
	return containers, AddressRange{upperFirst, whole.Last.Prev()}, nil
}

// LoadBalancerPoolFor returns the address range MetalLB hands out, as
// nodeconfig's LoadBalancerPool takes it: empty when
// networking.loadBalancer is false; networking.loadBalancerPool when set,
// checked against the cluster network subnet and the addresses already
// taken on it (gateway, nodes, helpers); otherwise the default pool, the
// upper half of the network. Errors name the field.
func (c *Cluster) LoadBalancerPoolFor(subnet *net.IPNet, taken []net.IP) (string, error) {
	nw := c.Networking
	if !nw.LoadBalancerEnabled() {
		return "", nil
	}
	const field = "networking.loadBalancerPool"
	fail := func(format string, a ...any) error {
		return FieldErrors{{Field: field, Detail: fmt.Sprintf(format, a...)}}
	}
	p, err := prefixOf(subnet)
	if err != nil {
		return "", err
	}
	if nw.LoadBalancerPool == "" {
		_, pool, err := SplitNetwork(subnet, len(taken))
		if err != nil {
			return "", fail("%v: set %s to a free range of it, or networking.loadBalancer: false", err, field)
		}
		return pool.String(), nil
	}
	pool, err := ParseAddressRange(nw.LoadBalancerPool)
	if err != nil {
		return "", fail("%v", err)
	}
	whole := prefixRange(p)
	usable := AddressRange{whole.First.Next(), whole.Last.Prev()}
	if !usable.Contains(pool.First) || !usable.Contains(pool.Last) {
		_, def, _ := SplitNetwork(subnet, 0)
		return "", fail("%s is outside the cluster network %s (its usable addresses are %s; berth's default pool is %s)", nw.LoadBalancerPool, p, usable, def)
	}
	for _, ip := range taken {
		a, ok := netip.AddrFromSlice(ip.To4())
		if ok && pool.Contains(a) {
			return "", fail("%s overlaps %s, an address of a node or of the network's gateway: choose addresses above the nodes'", nw.LoadBalancerPool, a)
		}
	}
	return pool.String(), nil
}

// validateLoadBalancer checks what can be checked before the cluster
// network exists: the pool's syntax.
func (c *Cluster) validateLoadBalancer() FieldErrors {
	nw := c.Networking
	if nw.LoadBalancerPool == "" {
		return nil
	}
	if !nw.LoadBalancerEnabled() {
		return FieldErrors{{Field: "networking.loadBalancerPool", Detail: "set while networking.loadBalancer is false: remove one of them"}}
	}
	if _, err := ParseAddressRange(nw.LoadBalancerPool); err != nil {
		return FieldErrors{{Field: "networking.loadBalancerPool", Detail: err.Error()}}
	}
	return nil
}

func prefixOf(subnet *net.IPNet) (netip.Prefix, error) {
	if subnet == nil {
		return netip.Prefix{}, fmt.Errorf("no cluster network")
	}
	a, ok := netip.AddrFromSlice(subnet.IP.To4())
	ones, bits := subnet.Mask.Size()
	if !ok || bits != 32 {
		return netip.Prefix{}, fmt.Errorf("cluster network %s is not IPv4", subnet)
	}
	return netip.PrefixFrom(a, ones).Masked(), nil
}

// prefixRange is every address of p, network and broadcast included.
func prefixRange(p netip.Prefix) AddressRange {
	first := toUint32(p.Addr())
	return AddressRange{p.Addr(), fromUint32(first | (1<<(32-p.Bits()) - 1))}
}

func toUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromUint32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
