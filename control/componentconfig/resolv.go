package componentconfig

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"strings"
)

// PodResolvConf rewrites the node's resolv.conf for pods: nameservers on
// loopback (Docker's embedded DNS) cannot be reached from a pod's network
// namespace and are replaced by gateway; search and options lines stay.
func PodResolvConf(nodeResolv, gateway string) string {
	var out []string
	servers := 0
	replaced := false
	for _, line := range strings.Split(nodeResolv, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "nameserver" {
			ip := net.ParseIP(fields[1])
			if ip != nil && ip.IsLoopback() {
				if gateway != "" && !replaced {
					out = append(out, "nameserver "+gateway)
					servers++
					replaced = true
				}
				continue
			}
			servers++
		}
		if len(fields) > 0 && strings.HasPrefix(fields[0], "#") {
			continue
		}
		if strings.TrimSpace(line) != "" {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if servers == 0 && gateway != "" {
		out = append(out, "nameserver "+gateway)
	}
	return strings.Join(out, "\n") + "\n"
}

// DefaultGatewayFromProcRoute returns the gateway of the default IPv4
// route in the format of /proc/net/route, or "".
func DefaultGatewayFromProcRoute(table string) string {
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "00000000" {
			continue
		}
		raw, err := hex.DecodeString(f[2])
		if err != nil || len(raw) != 4 {
			continue
		}
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, binary.LittleEndian.Uint32(raw))
		return ip.String()
	}
	return ""
}
