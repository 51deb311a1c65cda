package create

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/registry"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// secret tells whether a file holds a private key or credentials.
func secret(p string) bool {
	return strings.HasSuffix(p, ".key") || strings.HasSuffix(p, ".conf")
}

// TestCreateWritesSecretsPrivately runs a create against the fake engine
// up to the kubeconfig and walks everything it wrote: the host's
// kubeconfig and every file put into a node.
func TestCreateWritesSecretsPrivately(t *testing.T) {
	p := &fakeProvider{}
	home := t.TempDir()
	kcPath := filepath.Join(home, ".kube", "config")
	cfg := cluster(t, nodeconfig.RoleControlPlane, nodeconfig.RoleControlPlane, nodeconfig.RoleWorker)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &state{opts: Options{Config: cfg, KubeconfigPath: kcPath}, cfg: cfg, p: p}
	var steps []step
	for _, st := range Steps(cfg, 0) {
		steps = append(steps, st)
		if st.name == "writing the kubeconfig" {
			break
		}
	}
	if err := (runner{status: progress.Discard{}}).run(ctx, s, steps); err != nil {
		t.Fatal(err)
	}

	// Host side: the kubeconfig and the directory made for it.
	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{{kcPath, 0o600}, {filepath.Dir(kcPath), 0o700 | fs.ModeDir}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}

	// Node side.
	if len(p.nodes) != 4 {
		t.Fatalf("%d containers created, want 3 nodes and the load balancer", len(p.nodes))
	}
	keys := 0
	for _, spec := range p.nodes {
		dirs := map[string]fs.FileMode{}
		for _, f := range spec.Files {
			if f.Mode.IsDir() {
				dirs[f.Path] = f.Mode
				continue
			}
			switch {
			case secret(f.Path):
				keys++
				if f.Mode != 0o600 {
					t.Errorf("%s:%s: mode %v, want 0600", spec.Name, f.Path, f.Mode)
				}
			case f.Mode&0o022 != 0:
				t.Errorf("%s:%s: mode %v is writable by others", spec.Name, f.Path, f.Mode)
			}
			if !strings.HasPrefix(f.Path, "/etc/kubernetes/") {
				continue
			}
			// Every directory from /etc/kubernetes down is 0700, and
			// listed (so made with that mode) before the file.
			for d := path.Dir(f.Path); d != "/etc"; d = path.Dir(d) {
				if mode, ok := dirs[d]; !ok || mode != fs.ModeDir|0o700 {
					t.Errorf("%s:%s: directory %s is %v before it, want a 0700 directory", spec.Name, f.Path, d, mode)
				}
			}
		}
	}
	if keys < 20 {
		t.Errorf("only %d keys and kubeconfigs checked", keys)
	}
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEtcdAndKubeletCertificates checks the identities a three-member
// etcd and the kubelets need, each from the right CA.
func TestEtcdAndKubeletCertificates(t *testing.T) {
	cp := nodeconfig.RoleControlPlane
	p := planFor(t, cluster(t, cp, cp, cp, nodeconfig.RoleWorker))
	members := strings.Split(p.Nodes[0].Node.EtcdInitialCluster, ",")
	if len(members) != 3 {
		t.Fatalf("etcd members %v", members)
	}
	for i, m := range members {
		if want := p.Nodes[i].Spec.Name + "=https://" + p.Nodes[i].Node.IP + ":2380"; m != want {
			t.Errorf("etcd member %q, want %q", m, want)
		}
	}
	clusterCA, etcdCA := x509.NewCertPool(), x509.NewCertPool()
	cf := files(p.Nodes[0])
	clusterCA.AddCert(parseCert(t, cf["/etc/kubernetes/pki/ca.crt"].Data))
	etcdCA.AddCert(parseCert(t, cf["/etc/kubernetes/pki/etcd/ca.crt"].Data))
	verify := func(node, file string, roots *x509.CertPool, usage x509.ExtKeyUsage, name string) error {
		var f provider.File
		for _, n := range p.Nodes {
			if n.Spec.Name == node {
				f = files(n)["/etc/kubernetes/pki/"+file]
			}
		}
		if f.Data == nil {
			return errors.New("missing")
		}
		_, err := parseCert(t, f.Data).Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	server, client := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth
	for _, n := range p.Nodes {
		name, ip := n.Spec.Name, n.Node.IP
		// The kubelet's serving certificate, which the API server checks
		// against the cluster CA, for the node's address and name.
		for _, host := range []string{ip, name} {
			if err := verify(name, "kubelet.crt", clusterCA, server, host); err != nil {
				t.Errorf("%s: kubelet serving certificate for %s: %v", name, host, err)
			}
		}
		if n.Node.Role != cp {
			if _, ok := files(n)["/etc/kubernetes/pki/etcd/ca.crt"]; ok {
				t.Errorf("worker %s was given etcd credentials", name)
			}
			continue
		}
		for _, host := range []string{ip, "127.0.0.1", "localhost"} {
			if err := verify(name, "etcd/server.crt", etcdCA, server, host); err != nil {
				t.Errorf("%s: etcd serving certificate for %s: %v", name, host, err)
			}
		}
		// A peer certificate serves the peer port and is the member's
		// client identity to the others, who match it to its address.
		if err := verify(name, "etcd/peer.crt", etcdCA, server, ip); err != nil {
			t.Errorf("%s: etcd peer certificate as a server: %v", name, err)
		}
		if err := verify(name, "etcd/peer.crt", etcdCA, client, ip); err != nil {
			t.Errorf("%s: etcd peer certificate as a client: %v", name, err)
		}
		for _, c := range []string{"apiserver-etcd-client.crt", "etcd/healthcheck-client.crt"} {
			if err := verify(name, c, etcdCA, client, ""); err != nil {
				t.Errorf("%s: %s: %v", name, c, err)
			}
			// The etcd CA is its own: nothing the cluster CA signs opens
			// etcd, and no etcd identity is valid for the API server.
			if err := verify(name, c, clusterCA, client, ""); err == nil {
				t.Errorf("%s: %s verifies against the cluster CA", name, c)
			}
		}
		if err := verify(name, "apiserver-kubelet-client.crt", etcdCA, client, ""); err == nil {
			t.Errorf("%s: a cluster-CA certificate verifies against the etcd CA", name)
		}
		// The controller-manager and the scheduler serve on loopback with
		// certificates issued at create (none generated at their start).
		for _, c := range []string{"kube-controller-manager.crt", "kube-scheduler.crt"} {
			for _, host := range []string{"127.0.0.1", "localhost"} {
				if err := verify(name, c, clusterCA, server, host); err != nil {
					t.Errorf("%s: %s for %s: %v", name, c, host, err)
				}
			}
			if err := verify(name, c, clusterCA, server, ip); err == nil {
				t.Errorf("%s: %s is valid for the node's address; it serves loopback only", name, c)
			}
		}
	}
	// Another member's peer certificate does not name this member's
	// address.
	if err := verify(p.Nodes[1].Spec.Name, "etcd/peer.crt", etcdCA, server, p.Nodes[0].Node.IP); err == nil {
		t.Error("a peer certificate is valid for another member's address")
	}
}

// TestPublishedPortsDefaultToLoopback checks every port a plan publishes
// (API server, load balancer, extra port mappings) and the local
// registry's: on 127.0.0.1 unless the configuration names an address.
func TestPublishedPortsDefaultToLoopback(t *testing.T) {
	for _, cps := range []int{1, 3} {
		c := &config.Cluster{Name: "t"}
		for range cps {
			c.Nodes = append(c.Nodes, config.Node{Role: nodeconfig.RoleControlPlane})
		}
		c.Nodes = append(c.Nodes, config.Node{Role: nodeconfig.RoleWorker, ExtraPortMappings: []config.PortMapping{
			{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 53, HostPort: 5353, Protocol: "UDP"},
			{ContainerPort: 443, HostPort: 8443, ListenAddress: "0.0.0.0"},
		}})
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		p := planFor(t, c)
		published := 0
		for _, spec := range append(p.Helpers, specsOf(p)...) {
			for _, pm := range spec.Ports {
				published++
				want := "127.0.0.1"
				if pm.ContainerPort == 443 {
					want = "0.0.0.0" // configured
				}
				if pm.ListenAddress != want {
					t.Errorf("%d control planes: %s publishes %d on %q, want %s", cps, spec.Name, pm.ContainerPort, pm.ListenAddress, want)
				}
			}
		}
		if published != 4 {
			t.Errorf("%d control planes: %d ports published, want 4", cps, published)
		}
		if ip := net.ParseIP(strings.TrimPrefix(strings.Split(p.Server, ":")[1], "//")); ip == nil || !ip.IsLoopback() {
			t.Errorf("the host reaches the API at %s", p.Server)
		}
	}
	if got := registry.Spec(5001).ListenAddress; got != "127.0.0.1" {
		t.Errorf("the local registry is published on %q", got)
	}
}

func specsOf(p *Plan) []provider.NodeSpec {
	var out []provider.NodeSpec
	for _, n := range p.Nodes {
		out = append(out, n.Spec)
	}
	return out
}
