package componentconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key}
}

// issue returns a PEM certificate and key signed by ca.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestEtcdClientTLS(t *testing.T) {
	if !slices.Equal([]string{EtcdClientURL}, []string{"https://127.0.0.1:2379"}) {
		t.Errorf("etcd client URL %s", EtcdClientURL)
	}
	etcdCA, other := newTestCA(t), newTestCA(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	certPEM, keyPEM := etcdCA.issue(t, "berth-node-etcd-client", x509.ExtKeyUsageClientAuth)
	caFile := write("ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: etcdCA.cert.Raw}))
	cfg, err := etcdClientTLS(write("c.crt", certPEM), write("c.key", keyPEM), caFile)
	if err != nil {
		t.Fatal(err)
	}

	// A server like etcd's: it requires a client certificate from the
	// etcd CA.
	serve := func(ca *testCA) *httptest.Server {
		srvCert, srvKey := ca.issue(t, "etcd", x509.ExtKeyUsageServerAuth)
		pair, err := tls.X509KeyPair(srvCert, srvKey)
		if err != nil {
			t.Fatal(err)
		}
		clients := x509.NewCertPool()
		clients.AddCert(etcdCA.cert)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	get := func(url string, cfg *tls.Config) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	good := serve(etcdCA)
	if err := get(good.URL, cfg); err != nil {
		t.Errorf("the etcd client configuration does not reach an etcd-CA server: %v", err)
	}
	// It trusts only the etcd CA.
	if err := get(serve(other).URL, cfg); err == nil {
		t.Error("a server with a certificate from another CA was trusted")
	}
	// And the server refuses a client without a certificate.
	if err := get(good.URL, &tls.Config{RootCAs: cfg.RootCAs}); err == nil {
		t.Error("a client without a certificate was accepted")
	}

	if _, err := etcdClientTLS(filepath.Join(dir, "missing.crt"), filepath.Join(dir, "c.key"), caFile); err == nil {
		t.Error("a missing certificate was accepted")
	}
	if _, err := etcdClientTLS(filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), write("junk", []byte("junk"))); err == nil {
		t.Error("a CA file without a certificate was accepted")
	}
	// On a machine that is not a control-plane node there is nothing to load.
	if _, err := os.Stat(EtcdHealthcheckCert); os.IsNotExist(err) {
		if _, _, err := EtcdClientConfig(); err == nil {
			t.Error("EtcdClientConfig succeeded without credentials")
		}
	}
}
