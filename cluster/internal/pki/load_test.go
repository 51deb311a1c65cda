package pki

import (
	"fmt"
	"testing"
)

func TestLoadCluster(t *testing.T) {
	c, err := NewCluster()
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := c.CA.KeyPEM()
	etcdKey, _ := c.EtcdCA.KeyPEM()
	saKey, _ := EncodeKey(c.ServiceAccount)
	files := map[string][]byte{
		"ca.crt": c.CA.CertPEM(), "ca.key": caKey,
		"etcd/ca.crt": c.EtcdCA.CertPEM(), "etcd/ca.key": etcdKey,
		"sa.key": saKey,
	}
	read := func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("no %s", name)
	}
	got, err := LoadCluster(read)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.CA.CertPEM()) != string(c.CA.CertPEM()) || string(got.EtcdCA.CertPEM()) != string(c.EtcdCA.CertPEM()) {
		t.Errorf("the CAs differ after loading")
	}
	if gotSA, _ := EncodeKey(got.ServiceAccount); string(gotSA) != string(saKey) {
		t.Errorf("the service-account key differs after loading")
	}
	// Leaves issued by the loaded CA verify against the original.
	leaf, err := got.Client("someone")
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.Cert.CheckSignatureFrom(c.CA.Cert); err != nil {
		t.Errorf("a leaf of the loaded CA: %v", err)
	}

	// A key that is not the certificate's is refused.
	files["ca.key"] = etcdKey
	if _, err := LoadCluster(read); err == nil {
		t.Errorf("LoadCluster accepted the etcd CA's key for the cluster CA")
	}
	delete(files, "sa.key")
	files["ca.key"] = caKey
	if _, err := LoadCluster(read); err == nil {
		t.Errorf("LoadCluster without sa.key succeeded")
	}
}
