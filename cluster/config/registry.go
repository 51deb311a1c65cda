package config

import (
	"fmt"
	"net"
	"strings"
)

// The local registry (registry: {} or registry: {port: N}) is published
// on the host's loopback: RegistryListenAddress.
const RegistryListenAddress = "127.0.0.1"

// RegistryPort is the host port of the cluster's local registry, 0 when
// the cluster uses none.
func (c *Cluster) RegistryPort() int {
	if c.Registry == nil {
		return 0
	}
	if c.Registry.Port == 0 {
		return DefaultRegistryPort
	}
	return c.Registry.Port
}

func (c *Cluster) setRegistryDefaults() {
	if c.Registry != nil && c.Registry.Port == 0 {
		c.Registry.Port = DefaultRegistryPort
	}
}

// validateRegistry checks registry.port: a port number, and not one the
// cluster itself publishes on the registry's address.
func (c *Cluster) validateRegistry() FieldErrors {
	if c.Registry == nil {
		return nil
	}
	port := c.Registry.Port
	if port < 1 || port > 65535 {
		return FieldErrors{{Field: "registry.port", Detail: fmt.Sprintf("%d is not a port number", port)}}
	}
	// The registry listens on 127.0.0.1: a wildcard or loopback listener
	// of the cluster on the same port would collide with it.
	collides := func(addr string) bool {
		ip := net.ParseIP(addr)
		return ip != nil && (ip.IsUnspecified() || ip.Equal(net.ParseIP(RegistryListenAddress)))
	}
	var errs FieldErrors
	nw := c.Networking
	if nw.APIServerPort == port && collides(nw.APIServerAddress) {
		errs = append(errs, FieldError{Field: "registry.port", Detail: fmt.Sprintf("%d is also networking.apiServerPort: choose another port for one of them", port)})
	}
	for i, n := range c.Nodes {
		for j, pm := range n.ExtraPortMappings {
			if pm.HostPort == port && strings.EqualFold(pm.Protocol, "TCP") && collides(pm.ListenAddress) {
				errs = append(errs, FieldError{Field: "registry.port", Detail: fmt.Sprintf("%d is also nodes[%d].extraPortMappings[%d].hostPort: choose another port for one of them", port, i, j)})
			}
		}
	}
	return errs
}
