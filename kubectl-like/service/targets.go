// Package service provides `berth service`: the URLs at which the host
// reaches a Service of the cluster, with a port-forward through 127.0.0.1
// when the Service (or the nodes) cannot be reached directly.
package service

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/template"

	corev1 "k8s.io/api/core/v1"
)

// DefaultFormat is the template used for URLs unless --format says otherwise.
const DefaultFormat = "http://{{.IP}}:{{.Port}}"

// How a Target is reached.
const (
	ViaNodePort     = "NodePort"
	ViaLoadBalancer = "LoadBalancer"
	ViaExternalName = "ExternalName"
	ViaPortForward  = "port-forward"
)

// Target is one address at which the host reaches one port of a Service.
// Its exported fields are what --format templates can use.
type Target struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	// Name is the Service port's name (may be empty).
	Name     string `json:"name,omitempty"`
	Protocol string `json:"protocol"`
	// IP is the address to connect to: a node's InternalIP, the load
	// balancer's ingress IP or hostname, or 127.0.0.1 for a port-forward.
	IP string `json:"ip"`
	// Port is the port to connect to at IP.
	Port int32 `json:"port"`
	// ServicePort is the port the Service declares (spec.ports[].port).
	ServicePort int32 `json:"servicePort"`
	// NodePort is the node port allocated to the Service port, if any.
	NodePort int32 `json:"nodePort,omitempty"`
	// TargetPort is the Service's targetPort (number or name).
	TargetPort string `json:"targetPort,omitempty"`
	// Node names the node whose address IP is, for NodePort targets.
	Node string `json:"node,omitempty"`
	// Via is how the address reaches the Service: NodePort,
	// LoadBalancer, ExternalName or port-forward.
	Via string `json:"via"`
	// HostPort is IP:Port, with brackets around IPv6 addresses.
	HostPort string `json:"-"`
	// URL is the rendered --format.
	URL string `json:"url"`
}

// NotReachableError says a Service has no address outside the cluster and
// how to reach it anyway.
type NotReachableError struct {
	Namespace, Name string
	Type            corev1.ServiceType
	ClusterIP       string
	Reason          string
}

func (e *NotReachableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "service %s/%s ", e.Namespace, e.Name)
	if e.Reason != "" {
		b.WriteString(e.Reason)
	} else {
		fmt.Fprintf(&b, "is of type %s", e.Type)
		if e.ClusterIP != "" && e.ClusterIP != corev1.ClusterIPNone {
			fmt.Fprintf(&b, " and only reachable inside the cluster (at %s)", e.ClusterIP)
		} else {
			b.WriteString(" and only reachable inside the cluster")
		}
	}
	fmt.Fprintf(&b, ".\nTo reach it from this host:\n"+
		"  berth service %[2]s -n %[1]s --forward      # port-forward on 127.0.0.1 until Ctrl-C\n"+
		"  berth kubectl -- port-forward -n %[1]s service/%[2]s LOCAL:PORT\n"+
		"or make it a NodePort service: berth kubectl -- patch -n %[1]s service/%[2]s -p '{\"spec\":{\"type\":\"NodePort\"}}'",
		e.Namespace, e.Name)
	return b.String()
}

// NodeAddress returns the address the host uses for node: its InternalIP,
// else its ExternalIP, else "".
func NodeAddress(node *corev1.Node) string {
	for _, want := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range node.Status.Addresses {
			if a.Type == want && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}

// Targets computes where the host reaches svc:
//   - NodePort: every node's InternalIP at the node port, for each port;
//   - LoadBalancer: each ingress IP (or hostname) at the service port once
//     an ingress is assigned; before that, the node ports as for NodePort
//     (note says so);
//   - ExternalName: the external name at the service port;
//   - ClusterIP (and headless): a *NotReachableError.
//
// Targets are ordered by service port, then node name.
func Targets(svc *corev1.Service, nodes []corev1.Node) (targets []Target, note string, err error) {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		targets = nodePortTargets(svc, nodes)
		if len(targets) == 0 {
			return nil, "", &NotReachableError{Namespace: svc.Namespace, Name: svc.Name, Type: svc.Spec.Type,
				Reason: "has no node port allocated on a node with an address"}
		}
		return targets, "", nil
	case corev1.ServiceTypeLoadBalancer:
		for _, p := range svc.Spec.Ports {
			for _, ing := range svc.Status.LoadBalancer.Ingress {
				host := ing.IP
				if host == "" {
					host = ing.Hostname
				}
				if host == "" {
					continue
				}
				t := baseTarget(svc, p)
				t.IP, t.Port, t.Via = host, p.Port, ViaLoadBalancer
				targets = append(targets, t)
			}
		}
		if len(targets) > 0 {
			return targets, "", nil
		}
		targets = nodePortTargets(svc, nodes)
		if len(targets) == 0 {
			return nil, "", &NotReachableError{Namespace: svc.Namespace, Name: svc.Name, Type: svc.Spec.Type,
				Reason: "is of type LoadBalancer but has no ingress address yet and no node ports"}
		}
		return targets, fmt.Sprintf("service %s/%s has no load balancer ingress yet; using its node ports", svc.Namespace, svc.Name), nil
	case corev1.ServiceTypeExternalName:
		for _, p := range svc.Spec.Ports {
			t := baseTarget(svc, p)
			t.IP, t.Port, t.Via = svc.Spec.ExternalName, p.Port, ViaExternalName
			targets = append(targets, t)
		}
		if len(targets) == 0 {
			return nil, "", &NotReachableError{Namespace: svc.Namespace, Name: svc.Name, Type: svc.Spec.Type,
				Reason: fmt.Sprintf("is an alias of %q without ports", svc.Spec.ExternalName)}
		}
		return targets, "", nil
	default: // ClusterIP, or unset (the API default)
		typ := svc.Spec.Type
		if typ == "" {
			typ = corev1.ServiceTypeClusterIP
		}
		return nil, "", &NotReachableError{Namespace: svc.Namespace, Name: svc.Name, Type: typ, ClusterIP: svc.Spec.ClusterIP}
	}
}

func baseTarget(svc *corev1.Service, p corev1.ServicePort) Target {
	proto := string(p.Protocol)
	if proto == "" {
		proto = string(corev1.ProtocolTCP)
	}
	tp := p.TargetPort.String()
	if tp == "0" {
		tp = strconv.Itoa(int(p.Port))
	}
	return Target{
		Namespace:   svc.Namespace,
		Service:     svc.Name,
		Name:        p.Name,
		Protocol:    proto,
		ServicePort: p.Port,
		NodePort:    p.NodePort,
		TargetPort:  tp,
	}
}

func nodePortTargets(svc *corev1.Service, nodes []corev1.Node) []Target {
	sorted := append([]corev1.Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var targets []Target
	for _, p := range svc.Spec.Ports {
		if p.NodePort == 0 {
			continue
		}
		for i := range sorted {
			addr := NodeAddress(&sorted[i])
			if addr == "" {
				continue
			}
			t := baseTarget(svc, p)
			t.IP, t.Port, t.Node, t.Via = addr, p.NodePort, sorted[i].Name, ViaNodePort
			targets = append(targets, t)
		}
	}
	return targets
}

// ParseFormat parses a --format template.
func ParseFormat(format string) (*template.Template, error) {
	if format == "" {
		format = DefaultFormat
	}
	tmpl, err := template.New("format").Option("missingkey=error").Parse(format)
	if err != nil {
		return nil, fmt.Errorf("parsing --format %q: %w", format, err)
	}
	return tmpl, nil
}

// Render fills HostPort and URL of every target from tmpl.
func Render(tmpl *template.Template, targets []Target) error {
	for i := range targets {
		targets[i].HostPort = net.JoinHostPort(targets[i].IP, strconv.Itoa(int(targets[i].Port)))
		var b bytes.Buffer
		if err := tmpl.Execute(&b, targets[i]); err != nil {
			return fmt.Errorf("rendering --format for %s: %w", targets[i].HostPort, err)
		}
		targets[i].URL = b.String()
	}
	return nil
}

// FirstPerPort keeps the first target of each service port.
func FirstPerPort(targets []Target) []Target {
	seen := map[string]bool{}
	var out []Target
	for _, t := range targets {
		key := t.Name + "/" + strconv.Itoa(int(t.ServicePort)) + "/" + t.Protocol
		if !seen[key] {
			seen[key] = true
			out = append(out, t)
		}
	}
	return out
}
