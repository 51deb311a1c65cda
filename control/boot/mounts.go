package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// PrepareMounts makes the root mount shared (kubelet volume mounts must
// propagate into containers) and provides /dev/kmsg, which the kubelet's
// OOM watcher reads.
func PrepareMounts() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("making / rshared: %w", err)
	}
	if _, err := os.Stat("/dev/kmsg"); errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod("/dev/kmsg", unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))); err != nil {
			return fmt.Errorf("creating /dev/kmsg: %w", err)
		}
	}
	return nil
}

// Sysctls are the kernel parameters a node needs. Each is written if the
// file exists; a missing one (a module not loaded on the host) is skipped.
var Sysctls = map[string]string{
	"net/ipv4/ip_forward":                 "1",
	"net/ipv4/conf/all/forwarding":        "1",
	"net/ipv6/conf/all/forwarding":        "1",
	"net/bridge/bridge-nf-call-iptables":  "1",
	"net/bridge/bridge-nf-call-ip6tables": "1",
	"net/ipv4/conf/all/route_localnet":    "1",
	"fs/inotify/max_user_watches":         "524288",
	"fs/inotify/max_user_instances":       "512",
	// kube-proxy rejects traffic to a Service without endpoints with an
	// ICMP port-unreachable, so a client fails at once instead of waiting
	// for a timeout. The kernel rate-limits those per destination: a burst
	// of 6, then one a second (icmp_ratelimit 1000 ms). A pod resolving a
	// name before CoreDNS is Ready sends 8+ queries in the same
	// millisecond (A and AAAA for each search domain, twice); the ones
	// past the burst were dropped with no reply and Go's and glibc's
	// resolvers waited their 5 s timeout — the "DNS answering" stall every
	// 3-node create showed (packet capture in docs/performance.md). The
	// limit is per network namespace, so this changes the node only.
	"net/ipv4/icmp_ratelimit": "0",
	"net/ipv6/icmp/ratelimit": "0",
}

// ApplySysctls writes Sysctls and returns the names it could not set.
func ApplySysctls() []string {
	var failed []string
	for key, value := range Sysctls {
		path := filepath.Join("/proc/sys", key)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			failed = append(failed, key)
		}
	}
	return failed
}
