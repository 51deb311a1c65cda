package pki

import (
	"crypto"
	"fmt"
	"net"
	"time"
)

// Cluster holds the cluster-wide authorities and keys. Per-node and
// per-component certificates are issued from it on demand.
type Cluster struct {
	CA             *KeyPair
	FrontProxyCA   *KeyPair
	ServiceAccount crypto.Signer
	Now            func() time.Time
}

// NewCluster creates fresh authorities for a cluster.
func NewCluster() (*Cluster, error) {
	now := time.Now()
	ca, err := NewCA("kubernetes", now)
	if err != nil {
		return nil, err
	}
	fp, err := NewCA("front-proxy-ca", now)
	if err != nil {
		return nil, err
	}
	sa, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generating service-account key: %w", err)
	}
	return &Cluster{CA: ca, FrontProxyCA: fp, ServiceAccount: sa, Now: time.Now}, nil
}

// Client issues a client certificate from the cluster CA.
func (c *Cluster) Client(commonName string, orgs ...string) (*KeyPair, error) {
	return Issue(c.CA, LeafSpec{CommonName: commonName, Organizations: orgs, Client: true}, c.Now())
}

// APIServerSANs returns every name the API server must be reachable as:
// the in-cluster names, the first Service IP, loopback, the control-plane
// node addresses and any extra names.
func APIServerSANs(clusterDomain string, serviceIP net.IP, nodeIPs []net.IP, extra []string) ([]string, []net.IP) {
	dns := []string{
		"localhost",
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
		"kubernetes.default.svc." + clusterDomain,
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, serviceIP}
	ips = append(ips, nodeIPs...)
	for _, e := range extra {
		if ip := net.ParseIP(e); ip != nil {
			ips = append(ips, ip)
		} else if e != "" {
			dns = append(dns, e)
		}
	}
	return dns, ips
}

// APIServer issues the API server's serving certificate.
func (c *Cluster) APIServer(dns []string, ips []net.IP) (*KeyPair, error) {
	return Issue(c.CA, LeafSpec{CommonName: "kube-apiserver", DNSNames: dns, IPs: ips, Server: true}, c.Now())
}

// KubeletServing issues a node's kubelet serving certificate.
func (c *Cluster) KubeletServing(nodeName string, ip net.IP) (*KeyPair, error) {
	return Issue(c.CA, LeafSpec{CommonName: nodeName, DNSNames: []string{nodeName, "localhost"}, IPs: []net.IP{ip, net.ParseIP("127.0.0.1")}, Server: true}, c.Now())
}

// FrontProxyClient issues the aggregator's client certificate.
func (c *Cluster) FrontProxyClient() (*KeyPair, error) {
	return Issue(c.FrontProxyCA, LeafSpec{CommonName: "front-proxy-client", Client: true}, c.Now())
}
