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
	CA           *KeyPair
	FrontProxyCA *KeyPair
	// EtcdCA signs etcd's serving and peer certificates and the client
	// certificates etcd accepts. It is separate from CA (as kubeadm's
	// etcd/ca is): a certificate the cluster CA issues, to a kubelet or
	// a user, does not open etcd.
	EtcdCA         *KeyPair
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
	etcd, err := NewCA("etcd-ca", now)
	if err != nil {
		return nil, err
	}
	sa, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generating service-account key: %w", err)
	}
	return &Cluster{CA: ca, FrontProxyCA: fp, EtcdCA: etcd, ServiceAccount: sa, Now: time.Now}, nil
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

// LocalServing issues the serving certificate of a component that
// listens on the node's loopback only (the controller-manager's and the
// scheduler's health and metrics endpoints). Without one each of them
// makes a self-signed RSA-2048 pair at every start: 50–170 ms of CPU
// apiece on this project's machines, on the path to the first pod.
func (c *Cluster) LocalServing(component string) (*KeyPair, error) {
	return Issue(c.CA, LeafSpec{CommonName: component, DNSNames: []string{"localhost", component}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true}, c.Now())
}

// FrontProxyClient issues the aggregator's client certificate.
func (c *Cluster) FrontProxyClient() (*KeyPair, error) {
	return Issue(c.FrontProxyCA, LeafSpec{CommonName: "front-proxy-client", Client: true}, c.Now())
}

// etcdSANs are the names an etcd member is reached and known by: its
// node's name and address, and loopback (where the API server on the same
// node dials it).
func etcdSANs(nodeName string, ip net.IP) ([]string, []net.IP) {
	return []string{nodeName, "localhost"}, []net.IP{ip, net.ParseIP("127.0.0.1"), net.IPv6loopback}
}

// EtcdServer issues an etcd member's client-facing serving certificate.
// It is also valid as a client certificate, as kubeadm's is: etcd's
// gRPC gateway dials the member itself with it.
func (c *Cluster) EtcdServer(nodeName string, ip net.IP) (*KeyPair, error) {
	dns, ips := etcdSANs(nodeName, ip)
	return Issue(c.EtcdCA, LeafSpec{CommonName: nodeName, DNSNames: dns, IPs: ips, Server: true, Client: true}, c.Now())
}

// EtcdPeer issues an etcd member's peer certificate: it serves the peer
// port and authenticates the member to the other members, which check
// that it names the address the connection comes from (so it carries the
// member's own node IP).
func (c *Cluster) EtcdPeer(nodeName string, ip net.IP) (*KeyPair, error) {
	dns, ips := etcdSANs(nodeName, ip)
	return Issue(c.EtcdCA, LeafSpec{CommonName: nodeName, DNSNames: dns, IPs: ips, Server: true, Client: true}, c.Now())
}

// EtcdClient issues a client certificate etcd accepts.
func (c *Cluster) EtcdClient(commonName string) (*KeyPair, error) {
	return Issue(c.EtcdCA, LeafSpec{CommonName: commonName, Client: true}, c.Now())
}

// LoadCluster rebuilds the authorities of an existing cluster from the
// files nodeFiles writes under /etc/kubernetes/pki of a control plane
// (read returns a file by its path under that directory): the cluster CA,
// the etcd CA and the service-account key, so that a cluster made from
// them accepts the tokens and trusts the CA bundles the other cluster's
// objects hold. The front-proxy CA's key never leaves the CLI (nodes get
// its certificate only), so a fresh one is made: nothing stored in etcd
// depends on it (kube-apiserver republishes it at start).
func LoadCluster(read func(name string) ([]byte, error)) (*Cluster, error) {
	pair := func(cert, key string) (*KeyPair, error) {
		c, err := read(cert)
		if err != nil {
			return nil, err
		}
		k, err := read(key)
		if err != nil {
			return nil, err
		}
		kp, err := ParseKeyPair(c, k)
		if err != nil {
			return nil, fmt.Errorf("reading %s and %s: %w", cert, key, err)
		}
		return kp, nil
	}
	ca, err := pair("ca.crt", "ca.key")
	if err != nil {
		return nil, err
	}
	etcd, err := pair("etcd/ca.crt", "etcd/ca.key")
	if err != nil {
		return nil, err
	}
	saPEM, err := read("sa.key")
	if err != nil {
		return nil, err
	}
	sa, err := ParseKey(saPEM)
	if err != nil {
		return nil, fmt.Errorf("reading sa.key: %w", err)
	}
	fp, err := NewCA("front-proxy-ca", time.Now())
	if err != nil {
		return nil, err
	}
	return &Cluster{CA: ca, FrontProxyCA: fp, EtcdCA: etcd, ServiceAccount: sa, Now: time.Now}, nil
}
