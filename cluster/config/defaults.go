package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// Default returns the built-in configuration: one control-plane node
// that also runs workloads.
func Default() *Cluster {
	c := &Cluster{}
	c.SetDefaults()
	return c
}

// SetDefaults fills every field left empty.
func (c *Cluster) SetDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if len(c.Nodes) == 0 {
		c.Nodes = []Node{{Role: nodeconfig.RoleControlPlane}}
	}
	// A minor selects its pinned patch; an unsupported version is left
	// as it is for Validate to name.
	release, versionErr := versions.Resolve(c.KubernetesVersion)
	if versionErr == nil {
		c.KubernetesVersion = release.Kubernetes
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Role == "" {
			n.Role = nodeconfig.RoleControlPlane
		}
		if n.Image == "" && versionErr == nil {
			n.Image = release.NodeImage()
		}
		for j := range n.ExtraPortMappings {
			pm := &n.ExtraPortMappings[j]
			if pm.ListenAddress == "" {
				pm.ListenAddress = DefaultAPIAddress
			}
			if pm.Protocol == "" {
				pm.Protocol = "TCP"
			}
		}
		setSRIOVDefaults(n.SRIOV)
	}
	nw := &c.Networking
	if nw.PodSubnet == "" {
		nw.PodSubnet = DefaultPodSubnet
	}
	if nw.ServiceSubnet == "" {
		nw.ServiceSubnet = DefaultServiceSubnet
	}
	if nw.APIServerAddress == "" {
		nw.APIServerAddress = DefaultAPIAddress
	}
	if nw.KubeProxyMode == "" {
		nw.KubeProxyMode = DefaultProxyMode
	}
	if nw.DNSDomain == "" {
		nw.DNSDomain = DefaultDNSDomain
	}
	c.setRegistryDefaults()
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName checks a cluster name: it becomes part of container,
// network and host names, so it must be a short DNS label.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("cluster name is empty")
	}
	if len(name) > 40 || !nameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q is invalid: use at most 40 lowercase letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// Validate checks a defaulted configuration. Errors name the field.
func (c *Cluster) Validate() error {
	var errs FieldErrors
	add := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		field, detail, _ := strings.Cut(msg, ": ")
		errs = append(errs, FieldError{Field: field, Detail: detail})
	}
	if c.APIVersion != APIVersion {
		add("apiVersion: %q is not supported (use %s)", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		add("kind: %q is not supported (use %s)", c.Kind, Kind)
	}
	if err := ValidateName(c.Name); err != nil {
		add("name: %v", err)
	}
	if _, err := versions.Resolve(c.KubernetesVersion); err != nil {
		add("kubernetesVersion: %v", err)
	}
	controlPlanes := 0
	hostPorts := map[string]string{}
	for i, n := range c.Nodes {
		field := fmt.Sprintf("nodes[%d]", i)
		switch n.Role {
		case nodeconfig.RoleControlPlane:
			controlPlanes++
		case nodeconfig.RoleWorker:
		default:
			add("%s.role: %q is neither %q nor %q", field, n.Role, nodeconfig.RoleControlPlane, nodeconfig.RoleWorker)
		}
		for j, pm := range n.ExtraPortMappings {
			pf := fmt.Sprintf("%s.extraPortMappings[%d]", field, j)
			if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
				add("%s.containerPort: %d is not a port number", pf, pm.ContainerPort)
			}
			if pm.HostPort < 0 || pm.HostPort > 65535 {
				add("%s.hostPort: %d is not a port number", pf, pm.HostPort)
			}
			if net.ParseIP(pm.ListenAddress) == nil {
				add("%s.listenAddress: %q is not an IP address", pf, pm.ListenAddress)
			}
			proto := strings.ToUpper(pm.Protocol)
			if proto != "TCP" && proto != "UDP" && proto != "SCTP" {
				add("%s.protocol: %q is not TCP, UDP or SCTP", pf, pm.Protocol)
			}
			if pm.HostPort > 0 {
				key := fmt.Sprintf("%s/%s:%d", proto, pm.ListenAddress, pm.HostPort)
				if prev, dup := hostPorts[key]; dup {
					add("%s.hostPort: %d/%s on %s is already used by %s", pf, pm.HostPort, proto, pm.ListenAddress, prev)
				}
				hostPorts[key] = pf
			}
		}
		for j, m := range n.ExtraMounts {
			mf := fmt.Sprintf("%s.extraMounts[%d]", field, j)
			if m.HostPath == "" {
				add("%s.hostPath: empty", mf)
			}
			if !strings.HasPrefix(m.ContainerPath, "/") {
				add("%s.containerPath: %q is not an absolute path", mf, m.ContainerPath)
			}
			switch m.Propagation {
			case "", "None", "HostToContainer", "Bidirectional":
			default:
				add("%s.propagation: %q is not None, HostToContainer or Bidirectional", mf, m.Propagation)
			}
		}
	}
	if controlPlanes == 0 {
		add("nodes: a cluster needs at least one node with role %s", nodeconfig.RoleControlPlane)
	}
	nw := c.Networking
	_, pods, err := net.ParseCIDR(nw.PodSubnet)
	if err != nil {
		add("networking.podSubnet: %q is not a CIDR", nw.PodSubnet)
	} else if ones, _ := pods.Mask.Size(); pods.IP.To4() == nil || ones > 22 {
		add("networking.podSubnet: %s must be an IPv4 range of /22 or larger (each node gets a /24)", nw.PodSubnet)
	} else if room := 1 << (24 - ones); len(c.Nodes) > room {
		add("networking.podSubnet: %s has room for %d nodes (a /24 each), not %d: use a larger range such as %s", nw.PodSubnet, room, len(c.Nodes), DefaultPodSubnet)
	}
	_, svcs, err := net.ParseCIDR(nw.ServiceSubnet)
	if err != nil {
		add("networking.serviceSubnet: %q is not a CIDR", nw.ServiceSubnet)
	} else if ones, _ := svcs.Mask.Size(); svcs.IP.To4() == nil || ones > 28 {
		add("networking.serviceSubnet: %s must be an IPv4 range of /28 or larger", nw.ServiceSubnet)
	}
	if pods != nil && svcs != nil && (pods.Contains(svcs.IP) || svcs.Contains(pods.IP)) {
		add("networking.serviceSubnet: %s overlaps networking.podSubnet %s", nw.ServiceSubnet, nw.PodSubnet)
	}
	if net.ParseIP(nw.APIServerAddress) == nil {
		add("networking.apiServerAddress: %q is not an IP address", nw.APIServerAddress)
	}
	if nw.APIServerPort < 0 || nw.APIServerPort > 65535 {
		add("networking.apiServerPort: %d is not a port number", nw.APIServerPort)
	}
	switch nw.KubeProxyMode {
	case "nftables", "iptables", "none":
	default:
		add("networking.kubeProxyMode: %q is not nftables, iptables or none", nw.KubeProxyMode)
	}
	errs = append(errs, c.validateLoadBalancer()...)
	errs = append(errs, c.validateRegistry()...)
	errs = append(errs, c.validateSRIOV()...)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// FieldError is one problem with one field of the configuration.
type FieldError struct {
	Field  string
	Detail string
	// Line is the line of the field in the file it came from (0: unknown).
	Line int
}

func (e FieldError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Detail)
	}
	return e.Field + ": " + e.Detail
}

// FieldErrors is every problem found in a configuration.
type FieldErrors []FieldError

func (errs FieldErrors) Error() string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.String()
	}
	return "invalid cluster configuration:\n  " + strings.Join(lines, "\n  ")
}

// ServiceIP returns the n-th address of the service subnet (1 is the
// kubernetes Service, 10 is kube-dns).
func (c *Cluster) ServiceIP(n int) net.IP {
	_, svcs, _ := net.ParseCIDR(c.Networking.ServiceSubnet)
	ip := svcs.IP.To4()
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	v += uint32(n)
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4()
}
