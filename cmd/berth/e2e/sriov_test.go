//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/cluster/sriov/sriovtest"
)

// TestSRIOV runs everything after sysfs discovery for real, with no
// SR-IOV hardware: a fake sysfs tree (BERTH_SYSFS_ROOT, in the kernel's
// layout) maps a stand-in PF — a real veth, never moved — to two real
// veths as its "VFs". Their peers sit on a bridge in a network namespace
// the test made, where an HTTP server answers on 10.77.0.100.
func TestSRIOV(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SR-IOV needs root")
	}
	const (
		name   = "e2e-sriov"
		pf     = "bsriovpf"
		peerNS = "berth-e2e-sriov"
	)
	vfs := []string{"bsvf0", "bsvf1"}
	res := corev1.ResourceName("berth.dev/" + pf)
	worker := name + "-worker"

	// The stand-ins: a PF veth and two VF veths whose peers are bridged
	// in peerNS.
	ipCmd(t, "netns", "add", peerNS)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", peerNS).Run()
		for _, l := range append([]string{pf}, vfs...) {
			exec.Command("ip", "link", "del", l).Run()
		}
	})
	ipCmd(t, "link", "add", pf, "type", "veth", "peer", "name", pf+"p")
	ipCmd(t, "-n", peerNS, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", peerNS, "addr", "add", "10.77.0.100/24", "dev", "br0")
	ipCmd(t, "-n", peerNS, "link", "set", "br0", "up")
	for _, vf := range vfs {
		ipCmd(t, "link", "add", vf, "type", "veth", "peer", "name", vf+"p")
		ipCmd(t, "link", "set", vf+"p", "netns", peerNS)
		ipCmd(t, "-n", peerNS, "link", "set", vf+"p", "master", "br0", "up")
	}
	root := t.TempDir()
	tree, err := sriovtest.New(root)
	if err != nil {
		t.Fatal(err)
	}
	spec := sriovtest.PF{Name: pf, MAC: linkMAC(t, pf), Driver: "ice"}
	for _, vf := range vfs {
		spec.VFs = append(spec.VFs, sriovtest.VF{Netdev: vf, MAC: linkMAC(t, vf), Driver: "iavf"})
	}
	if _, err := tree.AddPF(spec); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_SYSFS_ROOT", root)

	// An HTTP server behind the "VFs".
	server := helloBinary(t)
	srv := exec.Command("ip", "netns", "exec", peerNS, server)
	srv.Env = append(os.Environ(), "PORT=8080")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	// Bad configs are refused before anything is made, naming the field.
	for _, bad := range []struct{ sriov, want string }{
		{"[{pf: nosuchpf0, vfs: 1}]", "nodes[1].sriov[0].pf"},
		{"[{pf: " + pf + ", vfs: 3}]", "nodes[1].sriov[0].vfs"},
	} {
		file := writeSRIOVConfig(t, bad.sriov, "")
		out, err := berth(t, "create", "cluster", "--name", name, "--config", file)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("sriov %s: create = %v %s, want an error naming %s", bad.sriov, err, out, bad.want)
		}
		assertNothingLeft(t, name)
	}
	twice := writeSRIOVConfig(t, "[{pf: "+pf+", vfIndexes: [0]}]", "[{pf: "+pf+", vfIndexes: [0]}]")
	if _, err := berth(t, "create", "cluster", "--name", name, "--config", twice); err == nil || !strings.Contains(err.Error(), "vfIndexes") {
		t.Errorf("the same VF on two nodes: %v, want an error naming vfIndexes", err)
	}
	assertNothingLeft(t, name)

	good := writeSRIOVConfig(t, "[{pf: "+pf+", vfs: 2, ipam: {type: host-local, ranges: [[{subnet: 10.77.0.0/24, rangeStart: 10.77.0.10, rangeEnd: 10.77.0.50}]]}}]", "")
	client := createCluster(t, name, "--config", good)
	allocatable := func(want int64) {
		t.Helper()
		eventually(t, fmt.Sprintf("%s allocatable %d on %s only", res, want, worker), 2*time.Minute, func() (bool, error) {
			nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, n := range nodes.Items {
				q, ok := n.Status.Allocatable[res]
				if n.Name == worker && (!ok || q.Value() != want) {
					return false, fmt.Errorf("%s has %v", n.Name, n.Status.Allocatable[res])
				}
				if n.Name != worker && ok && !q.IsZero() {
					return false, fmt.Errorf("%s (no VFs) has %s", n.Name, q.String())
				}
			}
			return true, nil
		})
	}
	allocatable(2)
	if inNode := vfsIn(t, worker, vfs); len(inNode) != 2 {
		t.Errorf("VFs in %s: %v, want both", worker, inNode)
	}

	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	for _, p := range []string{"sriov-a", "sriov-b", "sriov-c"} {
		createSRIOVPod(t, client, p, res)
	}
	waitPodRunning(t, client, "sriov-a")
	waitPodRunning(t, client, "sriov-b")
	eventually(t, "sriov-c Pending for lack of VFs", time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(context.Background(), "sriov-c", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, "Insufficient "+string(res)) {
				return true, nil
			}
		}
		return false, fmt.Errorf("phase %s, conditions %v", p.Status.Phase, p.Status.Conditions)
	})

	// Each pod has its VF as net1, with an address from the VF's IPAM,
	// and reaches the server behind it; PCIDEVICE_* names its VF.
	for _, p := range []string{"sriov-a", "sriov-b"} {
		out := mustBerth(t, "kubectl", "--context", "berth-"+name, "--", "exec", p, "--", "/hello", "get", "http://10.77.0.100:8080/")
		if !strings.HasPrefix(out, "hello from") {
			t.Errorf("%s over net1: %q", p, out)
		}
	}
	if inNode := vfsIn(t, worker, vfs); len(inNode) != 0 {
		t.Errorf("VFs still in %s while both are in pods: %v", worker, inNode)
	}

	// Deleting a pod gives its VF back to the node; the pending pod gets it.
	if err := client.CoreV1().Pods("default").Delete(context.Background(), "sriov-a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitPodRunning(t, client, "sriov-c")
	mustBerth(t, "kubectl", "--context", "berth-"+name, "--", "exec", "sriov-c", "--", "/hello", "get", "http://10.77.0.100:8080/")

	// stop/start: the VFs come back to the host, then into the node.
	mustBerth(t, "stop", "cluster", "--name", name)
	if onHost := vfsOnHost(t, vfs); len(onHost) != 2 {
		t.Errorf("after stop, VFs on the host: %v, want both", onHost)
	}
	mustBerth(t, "start", "cluster", "--name", name)
	allocatable(2)
	waitPodRunning(t, client, "sriov-b")

	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
	if onHost := vfsOnHost(t, vfs); len(onHost) != 2 {
		t.Errorf("after delete, VFs on the host: %v, want both", onHost)
	}
	if _, err := os.Stat("/sys/class/net/" + pf); err != nil {
		t.Errorf("the stand-in PF is gone from the host: %v", err)
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func linkMAC(t *testing.T, link string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + link + "/address")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func writeSRIOVConfig(t *testing.T, worker, cp string) string {
	t.Helper()
	cfg := "apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnetworking:\n  loadBalancer: false\nnodes:\n- role: control-plane\n"
	if cp != "" {
		cfg += "  sriov: " + cp + "\n"
	}
	cfg += "- role: worker\n  sriov: " + worker + "\n"
	file := filepath.Join(t.TempDir(), "sriov.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func helloBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	build := exec.Command("go", "build", "-o", bin, "./testdata/hello")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hello: %v\n%s", err, out)
	}
	return bin
}

func createSRIOVPod(t *testing.T, client kubernetes.Interface, name string, res corev1.ResourceName) {
	t.Helper()
	one := resource.MustParse("1")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "hello", Image: helloRef, ImagePullPolicy: corev1.PullNever,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{res: one}, Limits: corev1.ResourceList{res: one}},
			}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
}

func waitPodRunning(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	eventually(t, "pod "+name+" Running", 2*time.Minute, func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s %v", p.Status.Phase, p.Status.Conditions)
	})
}

// vfsIn returns which of vfs are network interfaces of node's namespace.
func vfsIn(t *testing.T, node string, vfs []string) []string {
	t.Helper()
	out, err := exec.Command("docker", "exec", node, "ls", "/sys/class/net").Output()
	if err != nil {
		t.Fatalf("listing %s's interfaces: %v", node, err)
	}
	return present(strings.Fields(string(out)), vfs)
}

// vfsOnHost returns which of vfs are in the host's namespace.
func vfsOnHost(t *testing.T, vfs []string) []string {
	t.Helper()
	entries, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return present(names, vfs)
}

func present(have, want []string) []string {
	var out []string
	for _, w := range want {
		for _, h := range have {
			if h == w {
				out = append(out, w)
			}
		}
	}
	return out
}
