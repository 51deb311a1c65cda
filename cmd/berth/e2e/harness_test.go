//go:build e2e

// Package e2e drives the real berth binary against the real Docker
// engine: clusters are created, pods run and are reached over the
// network, and everything is deleted again.
package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-dev/berth/cluster/provider/docker"
)

var (
	berthBin   string
	repoRoot   string
	kubeconfig string
	// nodeImage is E2E_NODE_IMAGE: the node image the tests build (from
	// this tree) and create clusters with, instead of the default
	// berth/node:<version> (so a branch can be tested without retagging
	// the shared default).
	nodeImage = os.Getenv("E2E_NODE_IMAGE")
	// clusterPrefix is E2E_CLUSTER_PREFIX: prepended to the names of the
	// clusters the tests that use clusterName create (so that several
	// people can run them on one machine).
	clusterPrefix = os.Getenv("E2E_CLUSTER_PREFIX")
)

// clusterName is the name of a test's cluster: base behind
// E2E_CLUSTER_PREFIX.
func clusterName(base string) string { return clusterPrefix + base }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", "..", ".."))
	tmp, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	berthBin = filepath.Join(tmp, "berth")
	build := exec.Command("go", "build", "-o", berthBin, "./cmd/berth")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building berth: %v\n%s", err, out)
		return 1
	}
	// The node image must match this tree (a no-op when its recipe is
	// unchanged; minutes on a fresh machine). E2E_BUILD_NODE_IMAGE=0
	// uses the image as it is (on a shared machine whose image another
	// tree built).
	buildArgs := []string{"build", "node-image"}
	if nodeImage != "" {
		buildArgs = append(buildArgs, "--image", nodeImage)
	}
	image := exec.Command(berthBin, buildArgs...)
	if os.Getenv("E2E_BUILD_NODE_IMAGE") == "0" {
		image = exec.Command("true")
	}
	image.Dir = repoRoot
	image.Stdout, image.Stderr = os.Stderr, os.Stderr
	if err := image.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building the node image: %v\n", err)
		return 1
	}
	kubeconfig = filepath.Join(tmp, "kubeconfig")
	os.Setenv("KUBECONFIG", kubeconfig)
	return m.Run()
}

// berth runs the binary from the repository root and returns stdout.
func berth(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return berthIn(t, nil, args...)
}

func berthIn(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Dir = repoRoot
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	started := time.Now()
	err := cmd.Run()
	shown := stdout.String()
	if strings.Contains(shown, "client-key-data") {
		shown = "(kubeconfig with credentials, not logged)\n"
	}
	t.Logf("berth %s (%s)\n%s%s", strings.Join(args, " "), time.Since(started).Round(10*time.Millisecond), shown, stderr.String())
	if err != nil {
		return stdout.String(), fmt.Errorf("berth %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func mustBerth(t *testing.T, args ...string) string {
	t.Helper()
	out, err := berth(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// createCluster creates a cluster and registers its deletion.
func createCluster(t *testing.T, name string, extra ...string) *kubernetes.Clientset {
	t.Helper()
	t.Cleanup(func() {
		if _, err := berth(t, "delete", "cluster", "--name", name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	args := append([]string{"create", "cluster", "--name", name, "--wait", "5m"}, extra...)
	mustBerth(t, withNodeImage(args)...)
	return clientFor(t, "berth-"+name)
}

// withNodeImage adds --image E2E_NODE_IMAGE to a create that names
// neither an image nor a Kubernetes version.
func withNodeImage(args []string) []string {
	if nodeImage == "" {
		return args
	}
	for _, a := range args {
		if a == "--image" || a == "--kubernetes-version" || strings.HasPrefix(a, "--image=") || strings.HasPrefix(a, "--kubernetes-version=") {
			return args
		}
	}
	return append(args, "--image", nodeImage)
}

func clientFor(t *testing.T, context string) *kubernetes.Clientset {
	t.Helper()
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		t.Fatalf("kubeconfig for %s: %v", context, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func provider(t *testing.T) *docker.Provider {
	t.Helper()
	p, err := docker.New(context.Background(), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// helloImage builds the test workload (testdata/hello) into a one-file
// Docker image, without any base image or registry.
func helloImage(t *testing.T, ref string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	build := exec.Command("go", "build", "-o", bin, "./testdata/hello")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hello: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(data)
	_ = tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir})
	_ = tw.Close()
	if err := provider(t).ImportImage(context.Background(), &buf, ref, []string{`ENTRYPOINT ["/hello"]`}); err != nil {
		t.Fatal(err)
	}
}

// httpGet fetches url until it answers 200 or the deadline passes.
func httpGet(t *testing.T, url string, within time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			last = fmt.Errorf("status %s", resp.Status)
		} else {
			last = err
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("GET %s did not answer within %s: %v", url, within, last)
	return ""
}

func eventually(t *testing.T, what string, within time.Duration, check func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		ok, err := check()
		if ok {
			return
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last error: %v)", what, within, last)
}

// assertNothingLeft fails if any container, network or volume of the
// cluster remains.
func assertNothingLeft(t *testing.T, name string) {
	t.Helper()
	c, n, v, err := provider(t).ClusterObjects(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if c+n+v != 0 {
		t.Errorf("cluster %s left %d containers, %d networks, %d volumes", name, c, n, v)
	}
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err == nil && cfg.Contexts["berth-"+name] != nil {
		t.Errorf("kubeconfig still has context berth-%s", name)
	}
}

// waitNodesReady waits until want nodes of cluster are Ready.
func waitNodesReady(t *testing.T, cluster string, want int) {
	t.Helper()
	eventually(t, "all nodes Ready", 3*time.Minute, func() (bool, error) {
		var rows []struct{ Status string }
		out, err := berth(t, "get", "nodes", "--name", cluster, "-o", "json")
		if err != nil {
			return false, err
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return false, err
		}
		ready := 0
		for _, r := range rows {
			if r.Status == "Ready" {
				ready++
			}
		}
		return ready == want, fmt.Errorf("%d of %d ready", ready, want)
	})
}
