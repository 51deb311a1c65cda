//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/provider/docker"
)

// TestLoadBalancer is issue 13's proof on 1 control plane + 2 workers:
// LoadBalancer Services get addresses from the pool berth reserves on the
// cluster network (MetalLB, layer 2) and answer the host; a Service gets
// the address it asks for; with externalTrafficPolicy Local the node
// answering holds an endpoint; stopping that node moves the address; after
// `docker restart` of every node the same addresses answer; a pool of one
// address leaves a second Service pending with an event saying why; and
// delete leaves nothing.
func TestLoadBalancer(t *testing.T) {
	const name = "e2e-lb"
	client := createCluster(t, name, "--workers", "2")
	nodes := nodeNames(t, name)

	// The network is split: Docker hands out the lower half, the pool is
	// the upper half.
	subnet, ipRange := networkIPAM(t, name)
	lower, pool, err := config.SplitNetwork(subnet, len(nodes))
	if err != nil {
		t.Fatal(err)
	}
	if ipRange != lower.String() {
		t.Errorf("network %s hands out %q, want %s", docker.NetworkName(name), ipRange, lower)
	}

	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	deployHello(t, client, "default", 2) // one on each worker (the control plane is tainted)

	// 1. An address from the pool within 10 s, answering the host.
	started := time.Now()
	auto := createLB(t, client, "lb-auto", nil, corev1.ServiceExternalTrafficPolicyCluster)
	autoIP := waitLBIP(t, client, auto, 10*time.Second)
	t.Logf("lb-auto got %s after %s", autoIP, time.Since(started).Round(10*time.Millisecond))
	if !pool.Contains(netipOf(t, autoIP)) {
		t.Errorf("lb-auto got %s, outside the pool %s", autoIP, pool)
	}
	if body := httpGet(t, "http://"+autoIP+"/", 10*time.Second); !strings.HasPrefix(body, "hello from") {
		t.Errorf("lb-auto answered %q", body)
	}

	// 2. A Service asking for an address gets it.
	wantIP := net.IP(pool.Last.Prev().AsSlice()).String()
	fixed := createLB(t, client, "lb-fixed", map[string]string{"metallb.io/loadBalancerIPs": wantIP}, corev1.ServiceExternalTrafficPolicyCluster)
	if got := waitLBIP(t, client, fixed, 10*time.Second); got != wantIP {
		t.Errorf("lb-fixed asked for %s, got %s", wantIP, got)
	}
	httpGet(t, "http://"+wantIP+"/", 10*time.Second)

	// 3. externalTrafficPolicy Local: the node answering ARP for the
	// address runs one of the Service's pods.
	local := createLB(t, client, "lb-local", nil, corev1.ServiceExternalTrafficPolicyLocal)
	localIP := waitLBIP(t, client, local, 10*time.Second)
	httpGet(t, "http://"+localIP+"/", 10*time.Second)
	announcer := answeringNode(t, name, nodes, localIP)
	if !hasHelloPod(t, client, announcer) {
		t.Errorf("%s answers for the Local Service %s but runs none of its pods", announcer, localIP)
	}

	// 3b. Two Services share one address (MetalLB's allow-shared-ip with
	// the same key, different ports) and both answer on it.
	sharedIP := net.IP(pool.Last.Prev().Prev().AsSlice()).String()
	shared := map[string]string{"metallb.io/loadBalancerIPs": sharedIP, "metallb.io/allow-shared-ip": "web"}
	createLBPort(t, client, "lb-shared-a", shared, 80)
	createLBPort(t, client, "lb-shared-b", shared, 8081)
	for _, svc := range []string{"lb-shared-a", "lb-shared-b"} {
		if got := waitLBIP(t, client, svc, 10*time.Second); got != sharedIP {
			t.Errorf("%s asked for the shared %s, got %s", svc, sharedIP, got)
		}
	}
	httpGet(t, "http://"+sharedIP+"/", 10*time.Second)
	httpGet(t, "http://"+sharedIP+":8081/", 10*time.Second)

	// 3c. A Service of another loadBalancerClass is not MetalLB's: it
	// gets no address (MetalLB serves Services without a class).
	other := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "lb-other-class", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:              corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass: ptr.To("example.com/other"),
			Selector:          map[string]string{"app": "hello"},
			Ports:             []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := client.CoreV1().Services("default").Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating service lb-other-class: %v", err)
	}
	// Another Service created after it gets its address, so MetalLB has
	// seen both by then.
	createLB(t, client, "lb-after-class", nil, corev1.ServiceExternalTrafficPolicyCluster)
	waitLBIP(t, client, "lb-after-class", 10*time.Second)
	if svc, err := client.CoreV1().Services("default").Get(context.Background(), "lb-other-class", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if in := svc.Status.LoadBalancer.Ingress; len(in) > 0 {
		t.Errorf("a Service of loadBalancerClass example.com/other got %v from MetalLB", in)
	}

	// 4. The answering node stops: another takes the address over.
	if out, err := exec.Command("docker", "stop", "-t", "1", announcer).CombinedOutput(); err != nil {
		t.Fatalf("docker stop %s: %v: %s", announcer, err, out)
	}
	stopped := time.Now()
	httpGet(t, "http://"+localIP+"/", 20*time.Second)
	t.Logf("%s answered again %s after %s stopped", localIP, time.Since(stopped).Round(100*time.Millisecond), announcer)
	if again := answeringNode(t, name, nodes, localIP); again == announcer {
		t.Errorf("%s still answers for %s after it stopped", announcer, localIP)
	}
	httpGet(t, "http://"+autoIP+"/", 20*time.Second)
	if out, err := exec.Command("docker", "start", announcer).CombinedOutput(); err != nil {
		t.Fatalf("docker start %s: %v: %s", announcer, err, out)
	}
	waitNodesReady(t, name, len(nodes))

	// 5. Every node restarted: the Services keep their addresses, which
	// answer again.
	if out, err := exec.Command("docker", append([]string{"restart"}, nodes...)...).CombinedOutput(); err != nil {
		t.Fatalf("docker restart: %v: %s", err, out)
	}
	waitNodesReady(t, name, len(nodes))
	waitAvailable(t, client, "default", "hello", 2)
	for svc, ip := range map[string]string{"lb-auto": autoIP, "lb-fixed": wantIP, "lb-local": localIP} {
		if got := waitLBIP(t, client, svc, time.Minute); got != ip {
			t.Errorf("%s had %s, has %s after docker restart", svc, ip, got)
		}
		httpGet(t, "http://"+ip+"/", 2*time.Minute)
	}

	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
}

// TestLoadBalancerPoolOfOne: with networking.loadBalancerPool holding one
// address, a second LoadBalancer Service stays pending and an event on it
// says why; networking.loadBalancer false leaves MetalLB out.
func TestLoadBalancerPoolOfOne(t *testing.T) {
	const name = "e2e-lb-one"
	// The network a create makes is the first free /24: the pool must
	// name an address of it.
	subnet := nextSubnet(t)
	only := nthAddress(subnet, 200)
	cfg := filepath.Join(t.TempDir(), "pool.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnetworking:\n  loadBalancerPool: "+only+"/32\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := createCluster(t, name, "--config", cfg)
	if got, _ := networkIPAM(t, name); got.String() != subnet.String() {
		t.Fatalf("cluster network is %s, the test expected %s (another network was made meanwhile?)", got, subnet)
	}
	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	deployHello(t, client, "default", 1)

	first := createLB(t, client, "first", nil, corev1.ServiceExternalTrafficPolicyCluster)
	if got := waitLBIP(t, client, first, 10*time.Second); got != only {
		t.Errorf("first got %s, want the pool's only address %s", got, only)
	}
	httpGet(t, "http://"+only+"/", 10*time.Second)
	second := createLB(t, client, "second", nil, corev1.ServiceExternalTrafficPolicyCluster)
	var why string
	eventually(t, "an event saying why the second Service has no address", 30*time.Second, func() (bool, error) {
		events, err := client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + second})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "no available IPs") {
				why = e.Reason + ": " + e.Message
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events", len(events.Items))
	})
	t.Logf("second: %s", why)
	svc, err := client.CoreV1().Services("default").Get(context.Background(), second, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("second got %v from a pool of one address already in use", svc.Status.LoadBalancer.Ingress)
	}
	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)

	// networking.loadBalancer: false leaves MetalLB out.
	const off = "e2e-lb-off"
	cfg = filepath.Join(t.TempDir(), "off.yaml")
	os.WriteFile(cfg, []byte("apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnetworking:\n  loadBalancer: false\n"), 0o644)
	client = createCluster(t, off, "--config", cfg)
	if _, err := client.CoreV1().Namespaces().Get(context.Background(), "metallb-system", metav1.GetOptions{}); err == nil {
		t.Error("networking.loadBalancer false: metallb-system exists")
	}
	mustBerth(t, "delete", "cluster", "--name", off)
	assertNothingLeft(t, off)
}

// createLB makes a LoadBalancer Service in front of the hello pods.
// createLBPort creates a LoadBalancer Service for the hello pods on port.
func createLBPort(t *testing.T, client kubernetes.Interface, name string, annotations map[string]string, port int32) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "hello"},
			Ports:    []corev1.ServicePort{{Port: port, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := client.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating service %s: %v", name, err)
	}
}

func createLB(t *testing.T, client kubernetes.Interface, name string, annotations map[string]string, policy corev1.ServiceExternalTrafficPolicy) string {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: policy,
			Selector:              map[string]string{"app": "hello"},
			Ports:                 []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := client.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating service %s: %v", name, err)
	}
	return name
}

// waitLBIP waits for the Service's external address.
func waitLBIP(t *testing.T, client kubernetes.Interface, name string, within time.Duration) string {
	t.Helper()
	var ip string
	eventually(t, "service "+name+" has an external IP", within, func() (bool, error) {
		svc, err := client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if in := svc.Status.LoadBalancer.Ingress; len(in) > 0 && in[0].IP != "" {
			ip = in[0].IP
			return true, nil
		}
		return false, fmt.Errorf("no ingress yet")
	})
	return ip
}

// answeringNode is the node whose MAC the host's neighbour table holds
// for ip: the one that answered ARP for it.
func answeringNode(t *testing.T, cluster string, nodes []string, ip string) string {
	t.Helper()
	macs := map[string]string{}
	for _, n := range nodes {
		mac := strings.TrimSpace(mustOut(t, "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}", n))
		macs[strings.ToLower(mac)] = n
	}
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// IP address, HW type, Flags, HW address, Mask, Device
		fields := strings.Fields(s.Text())
		if len(fields) >= 4 && fields[0] == ip && fields[2] == "0x2" {
			if n, ok := macs[strings.ToLower(fields[3])]; ok {
				return n
			}
			t.Fatalf("%s is answered by %s, which is no node of %s (%v)", ip, fields[3], cluster, macs)
		}
	}
	t.Fatalf("the host has no neighbour entry for %s", ip)
	return ""
}

func hasHelloPod(t *testing.T, client kubernetes.Interface, node string) bool {
	t.Helper()
	pods, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=hello", FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && podReady(&p) {
			return true
		}
	}
	return false
}

func nodeNames(t *testing.T, cluster string) []string {
	t.Helper()
	var rows []struct{ Name string }
	if err := json.Unmarshal([]byte(mustBerth(t, "get", "nodes", "--name", cluster, "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return names
}

// networkIPAM returns the cluster network's subnet and IP range.
func networkIPAM(t *testing.T, cluster string) (*net.IPNet, string) {
	t.Helper()
	out := strings.Fields(mustOut(t, "docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.IPRange}}{{end}}", docker.NetworkName(cluster)))
	if len(out) == 0 {
		t.Fatalf("network %s has no IPAM configuration", docker.NetworkName(cluster))
	}
	_, subnet, err := net.ParseCIDR(out[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 2 {
		return subnet, ""
	}
	return subnet, out[1]
}

// nextSubnet is the network the next create makes: the first free /24.
func nextSubnet(t *testing.T) *net.IPNet {
	t.Helper()
	var used []*net.IPNet
	for _, line := range strings.Split(mustOut(t, "sh", "-c", `docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $(docker network ls -q)`), "\n") {
		for _, s := range strings.Fields(line) {
			if _, n, err := net.ParseCIDR(s); err == nil {
				used = append(used, n)
			}
		}
	}
	subnet := docker.FreeSubnet(used)
	if subnet == nil {
		t.Fatal("no free /24 for a cluster network")
	}
	return subnet
}

// nthAddress is the n-th address of an IPv4 subnet.
func nthAddress(subnet *net.IPNet, n int) string {
	ip := subnet.IP.To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+byte(n)).String()
}

func netipOf(t *testing.T, ip string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestLoadBalancerDaemonRestart runs only with E2E_DAEMON_RESTART=1 (it
// stops and starts dockerd, as TestDockerDaemonRestart does): a
// LoadBalancer Service keeps its address across a Docker daemon restart
// and answers again.
func TestLoadBalancerDaemonRestart(t *testing.T) {
	if os.Getenv("E2E_DAEMON_RESTART") != "1" {
		t.Skip("set E2E_DAEMON_RESTART=1 to restart the Docker daemon under a cluster")
	}
	const name = "e2e-lb-daemon"
	client := createCluster(t, name, "--workers", "1")
	helloImage(t, helloRef)
	mustBerth(t, "load", "image", helloRef, "--name", name)
	deployHello(t, client, "default", 1)
	svc := createLB(t, client, "lb", nil, corev1.ServiceExternalTrafficPolicyCluster)
	ip := waitLBIP(t, client, svc, 10*time.Second)
	httpGet(t, "http://"+ip+"/", 10*time.Second)

	if out, err := exec.Command("pkill", "-TERM", "-x", "dockerd").CombinedOutput(); err != nil {
		t.Fatalf("stopping dockerd: %v: %s", err, out)
	}
	eventually(t, "dockerd stopped", time.Minute, func() (bool, error) {
		return exec.Command("pgrep", "-x", "dockerd").Run() != nil, nil
	})
	if out, err := exec.Command("sh", "-c", "nohup dockerd >>/var/log/berth-dockerd.log 2>&1 &").CombinedOutput(); err != nil {
		t.Fatalf("starting dockerd: %v: %s", err, out)
	}
	eventually(t, "dockerd answers", time.Minute, func() (bool, error) {
		return exec.Command("docker", "info").Run() == nil, nil
	})
	waitAvailable(t, client, "default", "hello", 1)
	if got := waitLBIP(t, client, svc, time.Minute); got != ip {
		t.Errorf("lb had %s, has %s after the daemon restart", ip, got)
	}
	if body := httpGet(t, "http://"+ip+"/", 2*time.Minute); !strings.HasPrefix(body, "hello from") {
		t.Errorf("after the daemon restart %s answered %q", ip, body)
	}
	mustBerth(t, "delete", "cluster", "--name", name)
	assertNothingLeft(t, name)
}
