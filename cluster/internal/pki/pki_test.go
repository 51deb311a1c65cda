package pki

import (
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestIssueChainsToCA(t *testing.T) {
	c, err := NewCluster()
	if err != nil {
		t.Fatal(err)
	}
	dns, ips := APIServerSANs("cluster.local", net.ParseIP("10.96.0.1"), []net.IP{net.ParseIP("172.30.0.2")}, []string{"api.example.test", "192.0.2.7"})
	srv, err := c.APIServer(dns, ips)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.CA.Cert)
	for _, name := range []string{"kubernetes.default.svc.cluster.local", "localhost", "api.example.test", "10.96.0.1", "172.30.0.2", "127.0.0.1", "192.0.2.7"} {
		if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("API server certificate not valid for %s: %v", name, err)
		}
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: "10.96.0.2", Roots: pool}); err == nil {
		t.Error("API server certificate valid for an address it should not name")
	}

	admin, err := c.Client("kubernetes-admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin certificate does not verify as a client: %v", err)
	}
	if _, err := admin.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a client certificate verified as a server certificate")
	}
	if got := admin.Cert.Subject.Organization; len(got) != 1 || got[0] != "system:masters" {
		t.Errorf("admin organizations = %v", got)
	}

	other, _ := NewCA("other", c.Now())
	foreign := x509.NewCertPool()
	foreign.AddCert(other.Cert)
	if _, err := admin.Cert.Verify(x509.VerifyOptions{Roots: foreign, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("certificate verified against an unrelated CA")
	}
}

func TestPEMRoundTrip(t *testing.T) {
	ca, err := NewCA("kubernetes", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeyPair(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) {
		t.Error("certificate changed in a PEM round trip")
	}
	leaf, err := Issue(back, LeafSpec{CommonName: "x", Client: true}, time.Now())
	if err != nil {
		t.Fatalf("issuing from a parsed CA: %v", err)
	}
	if err := leaf.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("leaf from parsed CA does not chain to the original: %v", err)
	}
	if _, err := ParseKeyPair([]byte("junk"), keyPEM); err == nil {
		t.Error("junk certificate accepted")
	}
}
