package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// archive writes a minimal unpacked `docker save` archive: one image with
// a config and one layer, under two tags.
func archive(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("abc.json", `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	write("l1/layer.tar", "pretend this is a tar")
	write("manifest.json", `[{"Config":"abc.json","RepoTags":["registry.k8s.io/e2e-test-images/kitten:1.8","busybox:1"],"Layers":["l1/layer.tar"]}]`)
	return dir
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func get(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestPullThroughMirror(t *testing.T) {
	s, err := Load(archive(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler(slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()

	if resp, _ := get(t, "GET", srv.URL+"/v2/"); resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("/v2/: %d %v", resp.StatusCode, resp.Header)
	}

	// containerd asks a mirror with ?ns=<the registry it stands in for>.
	resp, body := get(t, "GET", srv.URL+"/v2/e2e-test-images/kitten/manifests/1.8?ns=registry.k8s.io")
	if resp.StatusCode != 200 {
		t.Fatalf("manifest: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Type") != mediaManifest || resp.Header.Get("Docker-Content-Digest") != sha(body) {
		t.Fatalf("manifest headers: %v (digest of body %s)", resp.Header, sha(body))
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != mediaLayer || m.Config.MediaType != mediaConfig {
		t.Fatalf("manifest: %s", body)
	}
	for _, d := range append(m.Layers, m.Config) {
		resp, blob := get(t, "GET", srv.URL+"/v2/e2e-test-images/kitten/blobs/"+d.Digest)
		if resp.StatusCode != 200 || sha(blob) != d.Digest || int64(len(blob)) != d.Size {
			t.Errorf("blob %s: status %d, digest %s, size %d", d.Digest, resp.StatusCode, sha(blob), len(blob))
		}
	}

	// By digest, and HEAD carries no body but the digest.
	resp, head := get(t, "HEAD", srv.URL+"/v2/e2e-test-images/kitten/manifests/"+sha(body)+"?ns=registry.k8s.io")
	if resp.StatusCode != 200 || len(head) != 0 || resp.Header.Get("Docker-Content-Digest") != sha(body) {
		t.Errorf("HEAD by digest: %d %q %v", resp.StatusCode, head, resp.Header)
	}

	// Docker Hub short names, with and without ns.
	for _, u := range []string{"/v2/library/busybox/manifests/1?ns=docker.io", "/v2/library/busybox/manifests/1"} {
		if resp, _ := get(t, "GET", srv.URL+u); resp.StatusCode != 200 {
			t.Errorf("%s: %d", u, resp.StatusCode)
		}
	}

	// Unknown things are 404 with a registry error code; writes are refused.
	if resp, body := get(t, "GET", srv.URL+"/v2/e2e-test-images/kitten/manifests/9.9?ns=registry.k8s.io"); resp.StatusCode != 404 || !strings.Contains(string(body), "MANIFEST_UNKNOWN") {
		t.Errorf("unknown tag: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, "GET", srv.URL+"/v2/e2e-test-images/kitten/manifests/1.8?ns=quay.io"); resp.StatusCode != 404 {
		t.Errorf("other registry's name: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "GET", srv.URL+"/v2/x/blobs/sha256:00"); resp.StatusCode != 404 {
		t.Errorf("unknown blob: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "POST", srv.URL+"/v2/x/blobs/uploads/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("upload: %d", resp.StatusCode)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                        "docker.io/library/busybox:latest",
		"busybox:1":                      "docker.io/library/busybox:1",
		"user/app:2":                     "docker.io/user/app:2",
		"registry.k8s.io/pause:3.10.2":   "registry.k8s.io/pause:3.10.2",
		"localhost/x":                    "localhost/x:latest",
		"127.0.0.1:5000/team/app:v1":     "127.0.0.1:5000/team/app:v1",
		"registry.k8s.io/e2e/kitten:1.8": "registry.k8s.io/e2e/kitten:1.8",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("empty dir: %v", err)
	}
	dir := archive(t)
	_ = os.Remove(filepath.Join(dir, "l1", "layer.tar"))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "l1/layer.tar") {
		t.Errorf("missing layer: %v", err)
	}
}
