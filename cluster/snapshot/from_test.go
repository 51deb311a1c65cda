package snapshot

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cluster/internal/pki"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// A snapshot's cluster configuration comes back in berth's node order,
// with its networking; its PKI comes back with the same CA.
func TestClusterConfigAndPKI(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, nodesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Cluster: "golden", KubernetesVersion: "v1.37.2", Nodes: []Node{
		{Name: "golden-control-plane", Role: "control-plane"},
		{Name: "golden-worker", Role: "worker"},
		{Name: "golden-worker10", Role: "worker"},
		{Name: "golden-worker2", Role: "worker"},
	}}
	for _, n := range m.Nodes {
		nc := nodeconfig.Node{Name: n.Name, Role: n.Role, PodSubnet: "10.250.0.0/16", ServiceSubnet: "10.100.0.0/16", ClusterDomain: "corp.local", KubeProxyMode: "iptables",
			FeatureGates: map[string]bool{"X": true}, Labels: map[string]string{"tier": n.Name}}
		data, _ := json.Marshal(nc)
		if err := os.WriteFile(filepath.Join(dir, nodesDir, n.Name+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := ClusterConfig(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, n := range cfg.Nodes {
		order = append(order, n.Role+":"+n.Labels["tier"])
	}
	if got := strings.Join(order, ","); got != "control-plane:golden-control-plane,worker:golden-worker,worker:golden-worker2,worker:golden-worker10" {
		t.Errorf("node order %s", got)
	}
	nw := cfg.Networking
	if cfg.Name != "golden" || cfg.KubernetesVersion != "v1.37.2" || nw.PodSubnet != "10.250.0.0/16" || nw.ServiceSubnet != "10.100.0.0/16" ||
		nw.DNSDomain != "corp.local" || nw.KubeProxyMode != "iptables" || !cfg.FeatureGates["X"] || nw.LoadBalancer == nil || *nw.LoadBalancer {
		t.Errorf("config %+v", cfg)
	}

	c, err := pki.NewCluster()
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := c.CA.KeyPEM()
	etcdKey, _ := c.EtcdCA.KeyPEM()
	saKey, _ := pki.EncodeKey(c.ServiceAccount)
	archive := filepath.Join(dir, pkiFile)
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "pki/", Typeflag: tar.TypeDir, Mode: 0o700})
	for name, data := range map[string][]byte{"pki/ca.crt": c.CA.CertPEM(), "pki/ca.key": caKey, "pki/etcd/ca.crt": c.EtcdCA.CertPEM(), "pki/etcd/ca.key": etcdKey, "pki/sa.key": saKey, "pki/apiserver.crt": []byte("leaf")} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	f.Close()
	got, err := loadPKI(archive)
	if err != nil {
		t.Fatal(err)
	}
	if fingerprint(got.CA.CertPEM()) != fingerprint(c.CA.CertPEM()) {
		t.Errorf("the loaded CA differs")
	}
}

func TestCompatibleMapped(t *testing.T) {
	m := manifest("s")
	renamed := []Node{{Name: "b-control-plane", Role: "control-plane"}, {Name: "b-worker", Role: "worker"}}
	nodes := NodeMap{"a-control-plane": "b-control-plane", "a-worker": "b-worker"}
	if err := Compatible(m, "v1.37.2", renamed, "sha256:ca", nodes); err != nil {
		t.Errorf("a cluster made from the snapshot refused: %v", err)
	}
	swapped := NodeMap{"a-control-plane": "b-worker", "a-worker": "b-control-plane"}
	if err := Compatible(m, "v1.37.2", renamed, "sha256:ca", swapped); err == nil {
		t.Errorf("roles mapped crosswise accepted")
	}
	if err := Compatible(m, "v1.37.2", renamed, "sha256:other", nodes); err == nil {
		t.Errorf("another CA accepted under a mapping")
	}
	if got := nodes.args(); strings.Join(got, " ") != "a-control-plane=b-control-plane a-worker=b-worker" {
		t.Errorf("args %v", got)
	}
}
