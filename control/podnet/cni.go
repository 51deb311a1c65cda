// Package podnet is the node agent's pod network: a CNI configuration for
// this node's PodCIDR, a route to every other node's PodCIDR through that
// node's IP, and masquerading of traffic that leaves the pod network. All
// nodes of a cluster share one L2 bridge, so this is the whole overlay.
package podnet

import (
	"encoding/json"
	"fmt"
	"net"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// CNIConfFile is the name of the configuration containerd loads.
const CNIConfFile = "10-berth.conflist"

// CNIConfig returns the CNI network configuration for a node whose pods
// live in podCIDR. On a node with SR-IOV VFs in netdevice mode (sriov),
// berth's SR-IOV plugin ends the chain to move each pod's allocated VFs
// into it; other nodes do not run it at all.
func CNIConfig(podCIDR string, sriov bool) ([]byte, error) {
	if _, _, err := net.ParseCIDR(podCIDR); err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", podCIDR, err)
	}
	plugins := []any{
		map[string]any{
			"type":        "bridge",
			"bridge":      "berth0",
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"mtu":         1500,
			"ipam": map[string]any{
				"type":   "host-local",
				"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
			},
		},
		map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		},
	}
	if sriov {
		plugins = append(plugins, map[string]any{"type": nodeconfig.SRIOVCNIPlugin})
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "berth",
		"plugins":    plugins,
	}
	return json.MarshalIndent(conf, "", "  ")
}

// MasqueradeRules returns the nftables ruleset that masquerades traffic
// from pods to anything outside the cluster's pod network. Pod-to-pod
// traffic keeps its source address, across nodes too.
func MasqueradeRules(podSubnet string) (string, error) {
	if _, _, err := net.ParseCIDR(podSubnet); err != nil {
		return "", fmt.Errorf("pod subnet %q: %w", podSubnet, err)
	}
	return fmt.Sprintf(`table ip berth
delete table ip berth
table ip berth {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[1]s ip daddr != %[1]s masquerade
	}
}
`, podSubnet), nil
}

// Peer is another node's pod range and address.
type Peer struct {
	PodCIDR string
	NodeIP  string
}

// Route is a desired route: Dst via Gateway.
type Route struct {
	Dst     *net.IPNet
	Gateway net.IP
}

// Routes returns the routes to every peer's PodCIDR, skipping this node
// and peers whose CIDR or IP is not known yet.
func Routes(selfIP string, peers []Peer) []Route {
	var routes []Route
	for _, p := range peers {
		if p.NodeIP == selfIP || p.PodCIDR == "" {
			continue
		}
		_, dst, err := net.ParseCIDR(p.PodCIDR)
		gw := net.ParseIP(p.NodeIP)
		if err != nil || gw == nil || dst.IP.To4() == nil {
			continue
		}
		routes = append(routes, Route{Dst: dst, Gateway: gw})
	}
	return routes
}
