//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
)

// TestSecureDefaults checks issue 15's hardened defaults on a real
// cluster, from the host: the kubelet refuses anonymous requests and
// serves a certificate from the cluster CA; etcd accepts only TLS clients
// with a certificate from its own CA; `kubectl logs` and `exec` (API
// server → kubelet, verified) still work; keys and kubeconfigs are
// private; node containers are not privileged and publish on loopback.
func TestSecureDefaults(t *testing.T) {
	const name = "e2e-security"
	client := createCluster(t, name, "--workers", "1")
	ctx := context.Background()

	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	clusterCA := x509.NewCertPool()
	if !clusterCA.AppendCertsFromPEM(kc.Clusters["berth-"+name].CertificateAuthorityData) {
		t.Fatal("no cluster CA in the kubeconfig")
	}
	nodes, err := provider(t).ListNodes(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 {
		t.Fatalf("want 2 nodes, got %+v", nodes)
	}

	// The kubelet: anonymous requests are refused, and its serving
	// certificate is the cluster CA's, for the node's address.
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, n := range nodes {
		url := fmt.Sprintf("https://%s:10250/pods", n.IP)
		resp, err := insecure.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("anonymous GET %s: %s, want 401 or 403", url, resp.Status)
		}
		certs := resp.TLS.PeerCertificates
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: clusterCA, DNSName: n.IP}); err != nil {
			t.Errorf("%s: the kubelet's serving certificate is not the cluster CA's for %s: %v", n.Name, n.IP, err)
		}
	}

	// The API server answers anonymous clients on its health paths only.
	server := kc.Clusters["berth-"+name].Server
	for path, want := range map[string]int{"/readyz": http.StatusOK, "/livez": http.StatusOK, "/version": http.StatusUnauthorized, "/api/v1/namespaces": http.StatusUnauthorized} {
		resp, err := insecure.Get(server + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", server, path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s: %s, want %d", path, resp.Status, want)
		}
	}

	// etcd, on the control plane's address: no plain HTTP, no TLS client
	// without a certificate, and a serving certificate from its own CA.
	var cp string
	for _, n := range nodes {
		if n.Role == "control-plane" {
			cp = n.IP
		}
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + cp + ":2379/version"); err == nil {
		resp.Body.Close()
		t.Errorf("etcd answered plain HTTP: %s", resp.Status)
	}
	if resp, err := insecure.Get("https://" + cp + ":2379/version"); err == nil {
		resp.Body.Close()
		t.Errorf("etcd answered a TLS client without a certificate: %s", resp.Status)
	}
	for _, port := range []string{"2379", "2380"} {
		// The server's certificate is captured during the handshake,
		// which may fail (TLS 1.2) or not (1.3) without a client
		// certificate.
		var leaf *x509.Certificate
		conn, err := tls.Dial("tcp", cp+":"+port, &tls.Config{InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				c, perr := x509.ParseCertificate(raw[0])
				leaf = c
				return perr
			}})
		if err == nil {
			conn.Close()
		}
		if leaf == nil {
			t.Errorf("no TLS certificate from etcd on %s: %v", port, err)
			continue
		}
		if leaf.Issuer.CommonName != "etcd-ca" {
			t.Errorf("etcd's certificate on %s is issued by %q, want etcd's own CA", port, leaf.Issuer.CommonName)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: clusterCA}); err == nil {
			t.Errorf("etcd's certificate on %s chains to the cluster CA", port)
		}
	}

	// logs and exec go API server → kubelet, which now verifies the
	// kubelet's certificate. The pod runs as an unprivileged user: exec
	// joins its namespaces (the node's CAP_SYS_PTRACE).
	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	uid := int64(1000)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: "default", Labels: map[string]string{"app": "secure"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &uid},
			Containers:      []corev1.Container{{Name: "c", Image: helloRef, ImagePullPolicy: corev1.PullNever}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "secure", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "secure"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kctx := "--context=berth-" + name
	mustBerth(t, "kubectl", kctx, "--", "wait", "--for=condition=Ready", "pod/secure", "--timeout=120s")
	out := mustBerth(t, "kubectl", kctx, "--", "exec", "secure", "--", "/hello", "get", "http://secure.default.svc.cluster.local/")
	if !strings.Contains(out, "hello from secure") {
		t.Errorf("exec through the Service: %q", out)
	}
	out = mustBerth(t, "kubectl", kctx, "--", "logs", "-n", "kube-system", "-l", "k8s-app=kube-dns", "--tail=20")
	if !strings.Contains(out, "CoreDNS") {
		t.Errorf("kubectl logs of CoreDNS: %q", out)
	}

	// Modes: the host's kubeconfig, and keys and their directories in
	// the nodes.
	if fi, err := os.Stat(kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %s: mode %v (%v), want 0600", kubeconfig, fi.Mode(), err)
	}
	want := map[string]string{
		"/etc/kubernetes": "700", "/etc/kubernetes/pki": "700", "/etc/kubernetes/pki/etcd": "700",
		"/etc/kubernetes/admin.conf": "600", "/etc/kubernetes/pki/ca.key": "600", "/etc/kubernetes/pki/etcd/ca.key": "600",
		"/etc/kubernetes/pki/etcd/peer.key": "600", "/etc/kubernetes/pki/kubelet.key": "600", "/etc/kubernetes/pki/ca.crt": "644",
	}
	for path, mode := range want {
		out, err := exec.Command("docker", "exec", name+"-control-plane", "stat", "-c", "%a", path).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != mode {
			t.Errorf("%s in the node: mode %s (%v), want %s", path, got, err, mode)
		}
	}

	// The node containers: an explicit capability set, never privileged,
	// and the API server published on loopback only.
	for _, n := range nodes {
		out, err := exec.Command("docker", "inspect", "--format", "{{json .HostConfig}}", n.Name).Output()
		if err != nil {
			t.Fatal(err)
		}
		var host struct {
			Privileged   bool
			CapDrop      []string
			PortBindings map[string][]struct{ HostIP string }
		}
		if err := json.Unmarshal(out, &host); err != nil {
			t.Fatal(err)
		}
		if host.Privileged || len(host.CapDrop) != 1 || !strings.EqualFold(strings.TrimPrefix(host.CapDrop[0], "CAP_"), "ALL") {
			t.Errorf("%s: privileged %v, capabilities dropped %v; want an explicit set", n.Name, host.Privileged, host.CapDrop)
		}
		for port, bindings := range host.PortBindings {
			for _, b := range bindings {
				if b.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %s on %q, want 127.0.0.1", n.Name, port, b.HostIP)
				}
			}
		}
	}
}
