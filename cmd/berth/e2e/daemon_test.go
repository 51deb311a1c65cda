//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDockerDaemonRestart runs only with E2E_DAEMON_RESTART=1, on a machine
// whose dockerd this test may stop and start itself (hack/install-deps.sh
// starts it that way): the cluster comes back Ready and its workload
// serves again, with the same node addresses and certificates.
func TestDockerDaemonRestart(t *testing.T) {
	if os.Getenv("E2E_DAEMON_RESTART") != "1" {
		t.Skip("set E2E_DAEMON_RESTART=1 to restart the Docker daemon under a cluster")
	}
	const name = "e2e-daemon"
	client := createCluster(t, name, "--workers", "1")
	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	port := deployHello(t, client, "default", 1)
	ip := strings.TrimSpace(mustOut(t, "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name+"-worker"))
	httpGet(t, fmt.Sprintf("http://%s:%d/", ip, port), time.Minute)

	if out, err := exec.Command("pkill", "-TERM", "-x", "dockerd").CombinedOutput(); err != nil {
		t.Fatalf("stopping dockerd: %v: %s", err, out)
	}
	eventually(t, "dockerd stopped", time.Minute, func() (bool, error) {
		return exec.Command("pgrep", "-x", "dockerd").Run() != nil, nil
	})
	daemon := exec.Command("sh", "-c", "nohup dockerd >>/var/log/berth-dockerd.log 2>&1 &")
	if out, err := daemon.CombinedOutput(); err != nil {
		t.Fatalf("starting dockerd: %v: %s", err, out)
	}
	eventually(t, "dockerd answers", time.Minute, func() (bool, error) {
		return exec.Command("docker", "info").Run() == nil, nil
	})
	waitAvailable(t, client, "default", "hello", 1)
	body := httpGet(t, fmt.Sprintf("http://%s:%d/", ip, port), 2*time.Minute)
	if !strings.HasPrefix(body, "hello from") {
		t.Errorf("after the daemon restart the app answered %q", body)
	}

}

func mustOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}
