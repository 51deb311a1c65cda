package service

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestAnsweredAndAfterWait(t *testing.T) {
	for err, want := range map[error]bool{
		syscall.ECONNREFUSED:                          true,
		syscall.ECONNRESET:                            true,
		syscall.EHOSTUNREACH:                          false,
		syscall.ENETUNREACH:                           false,
		context.DeadlineExceeded:                      false,
		errors.New("lookup lb.example: no such host"): false,
	} {
		if got := answered(err); got != want {
			t.Errorf("answered(%v) = %v, want %v", err, got, want)
		}
	}

	np := Target{Via: ViaNodePort, IP: "172.18.0.2", Port: 30080}
	lb := Target{Via: ViaLoadBalancer, IP: "172.18.255.200", Port: 80}
	cases := []struct {
		name    string
		targets []Target
		lastErr []error
		want    waitOutcome
	}{
		{"all answer", []Target{np, lb}, []error{nil, nil}, urlsAnswer},
		{"node port still refused", []Target{np}, []error{syscall.ECONNREFUSED}, urlsMayNotAnswer},
		{"node port silent: the nodes answered the probe", []Target{np}, []error{syscall.EHOSTUNREACH}, urlsMayNotAnswer},
		{"load balancer refused: reached, rules missing", []Target{lb}, []error{syscall.ECONNREFUSED}, urlsMayNotAnswer},
		{"load balancer out of reach", []Target{lb}, []error{syscall.EHOSTUNREACH}, forwardInstead},
		{"load balancer timing out", []Target{np, lb}, []error{nil, context.DeadlineExceeded}, forwardInstead},
	}
	for _, c := range cases {
		if got := afterWait(c.targets, c.lastErr); got != c.want {
			t.Errorf("%s: afterWait = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestProbeAddress(t *testing.T) {
	lb := testService(corev1.ServiceTypeLoadBalancer, httpPort)
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.18.255.200"}}
	targets, _, err := Targets(lb, nodes())
	if err != nil {
		t.Fatal(err)
	}
	// The nodes tell whether the cluster's network is reachable; the load
	// balancer address may not be announced yet.
	if got := probeAddress(lb, nodes(), targets); got != "172.18.0.2:30080" {
		t.Errorf("probe for a LoadBalancer with node ports = %q", got)
	}
	noNodePorts := testService(corev1.ServiceTypeLoadBalancer, corev1.ServicePort{Port: 80})
	noNodePorts.Status.LoadBalancer.Ingress = lb.Status.LoadBalancer.Ingress
	targets, _, _ = Targets(noNodePorts, nodes())
	if got := probeAddress(noNodePorts, nodes(), targets); got != "172.18.255.200:80" {
		t.Errorf("probe for a LoadBalancer without node ports = %q", got)
	}
}

// Right after expose: no ready endpoint, then kube-proxy refusing, then
// an answer. The URL is printed only then, and stderr says what the
// command waited for once that took longer than NoticeAfter.
func TestRunWaitsUntilURLAnswers(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort), nil)
	h.o.URLOnly, h.o.One, h.o.NoticeAfter = true, true, 20*time.Millisecond
	if _, err := h.client.DiscoveryV1().EndpointSlices("default").Update(context.Background(), readySlice(false), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = h.client.DiscoveryV1().EndpointSlices("default").Update(context.Background(), readySlice(false, true), metav1.UpdateOptions{})
	}()
	// The probe, then 3 refusals while the proxy rules are missing.
	h.answer = func(addr string, n int) error {
		if n <= 4 {
			return syscall.ECONNREFUSED
		}
		return nil
	}
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "http://172.18.0.2:30080\n" {
		t.Errorf("stdout = %q", h.out)
	}
	if n := len(h.dials()); n != 5 {
		t.Errorf("dialed %d times, want the probe, 3 refusals and the answer", n)
	}
	e := h.errOut.String()
	if !strings.Contains(e, "waiting for service default/web to have a ready endpoint (0 of 1 ready)\n") {
		t.Errorf("stderr does not say what it waits for:\n%s", e)
	}
	if strings.Contains(e, "warning") || h.fwd.pod != "" {
		t.Errorf("warned or forwarded although the URL answered:\n%s", e)
	}
}

func TestRunWaitGivesUp(t *testing.T) {
	// Proxy rules never appear: the URL is printed with a warning.
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort), syscall.ECONNREFUSED)
	h.o.URLOnly, h.o.Wait = true, 80*time.Millisecond
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "http://172.18.0.2:30080\nhttp://172.18.0.3:30080\n" {
		t.Errorf("stdout = %q", h.out)
	}
	if !strings.Contains(h.errOut.String(), "warning: 172.18.0.2:30080 does not accept connections after 80ms (dial tcp: connection refused); printing the URLs of service default/web anyway") {
		t.Errorf("stderr = %q", h.errOut)
	}

	// No endpoint at all.
	h = newHarness(testService(corev1.ServiceTypeNodePort, httpPort), nil)
	h.o.URLOnly, h.o.Wait = true, 50*time.Millisecond
	if err := h.client.DiscoveryV1().EndpointSlices("default").Delete(context.Background(), "web-abc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.Len() == 0 || !strings.Contains(h.errOut.String(), "warning: service default/web has no ready endpoint after 50ms; printing its URLs anyway") {
		t.Errorf("stdout %q stderr %q", h.out, h.errOut)
	}

	// --wait=0: only the reachability check.
	h = newHarness(testService(corev1.ServiceTypeNodePort, httpPort), syscall.ECONNREFUSED)
	h.o.URLOnly, h.o.Wait = true, 0
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if d := h.dials(); len(d) != 1 || h.errOut.Len() != 0 {
		t.Errorf("--wait=0 dialed %v, stderr %q", d, h.errOut)
	}
	for _, a := range h.client.Actions() {
		if a.GetResource().Resource == "endpointslices" {
			t.Error("--wait=0 looked up endpoints")
		}
	}
}

func lbService() *corev1.Service {
	svc := testService(corev1.ServiceTypeLoadBalancer, httpPort)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.18.255.200"}}
	return svc
}

func TestRunLoadBalancer(t *testing.T) {
	// Nodes reachable, the address announced after a moment.
	h := newHarness(lbService(), nil)
	h.o.URLOnly = true
	h.answer = func(addr string, n int) error {
		if addr == "172.18.255.200:80" && n < 3 {
			return syscall.EHOSTUNREACH
		}
		return nil
	}
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "http://172.18.255.200:80\n" || h.fwd.pod != "" {
		t.Errorf("stdout %q, forwarded to %q", h.out, h.fwd.pod)
	}
	if d := h.dials(); d[0] != "172.18.0.2:30080" {
		t.Errorf("reachability checked at %s, want a node's address", d[0])
	}

	// Nodes reachable, the address never: forward, and say why.
	h = newHarness(lbService(), nil)
	h.o.URLOnly, h.o.Wait = true, 50*time.Millisecond
	h.answer = func(addr string, n int) error {
		if addr == "172.18.255.200:80" {
			return syscall.EHOSTUNREACH
		}
		return syscall.ECONNREFUSED
	}
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "http://127.0.0.1:40000\n" || h.fwd.pod != "web-b" {
		t.Errorf("stdout %q, forwarded to %q", h.out, h.fwd.pod)
	}
	if !strings.Contains(h.errOut.String(), "load balancer address 172.18.255.200:80 does not answer from this host although its nodes do; forwarding service default/web through 127.0.0.1 instead") {
		t.Errorf("stderr = %q", h.errOut)
	}

	// Nodes out of reach (no route to the cluster's network): forward at
	// once, without waiting for the address.
	h = newHarness(lbService(), syscall.ENETUNREACH)
	h.o.URLOnly = true
	start := time.Now()
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "http://127.0.0.1:40000\n" || len(h.dials()) != 1 || time.Since(start) > time.Second {
		t.Errorf("stdout %q after dials %v (%v)", h.out, h.dials(), time.Since(start))
	}
	if !strings.Contains(h.errOut.String(), "172.18.0.2:30080 is not reachable from this host (dial tcp: network is unreachable); forwarding service default/web through 127.0.0.1 instead") {
		t.Errorf("stderr = %q", h.errOut)
	}
}

func TestForwardWaitsForReadyPod(t *testing.T) {
	svc := testService(corev1.ServiceTypeClusterIP, httpPort)
	h := newHarness(svc, nil)
	h.o.Forward, h.o.URLOnly = true, true
	ctx := context.Background()
	for _, name := range []string{"web-b", "web-c"} {
		if err := h.client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = h.client.CoreV1().Pods("default").Create(ctx, readyPod("web-d", true), metav1.CreateOptions{})
	}()
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.fwd.pod != "web-d" || h.out.String() != "http://127.0.0.1:40000\n" {
		t.Errorf("forwarded to %q, stdout %q", h.fwd.pod, h.out)
	}

	h = newHarness(svc, nil)
	h.o.Forward, h.o.Wait = true, 30*time.Millisecond
	for _, name := range []string{"web-b", "web-c"} {
		_ = h.client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{})
	}
	if err := h.run(t); err == nil || !strings.Contains(err.Error(), "no ready pod to forward to (1 pod(s) match its selector app=web) (waited 30ms)") {
		t.Errorf("no ready pod within --wait: %v", err)
	}
}

func TestReadyEndpoints(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort), nil)
	other := readySlice(true)
	other.Name, other.Labels = "other", map[string]string{discoveryv1.LabelServiceName: "other"}
	unset := readySlice(false, false)
	unset.Name = "web-def"
	unset.Endpoints[1].Conditions.Ready = nil // unknown counts as ready
	unset.Endpoints[0].Conditions.Ready = ptr.To(false)
	for _, s := range []*discoveryv1.EndpointSlice{other, unset} {
		if _, err := h.client.DiscoveryV1().EndpointSlices("default").Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ready, total, err := readyEndpoints(context.Background(), h.client, testService(corev1.ServiceTypeNodePort, httpPort))
	if err != nil || ready != 2 || total != 3 {
		t.Errorf("readyEndpoints = %d of %d, %v; want 2 of 3", ready, total, err)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// A node that is slow to answer once is not out of reach: only silence on
// every try sends berth to a port-forward that blocks a script.
func TestReachableRetriesSilence(t *testing.T) {
	var tries int
	o := &Options{DialTimeout: 10 * time.Millisecond, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		tries++
		if tries < 3 {
			return nil, timeoutErr{}
		}
		return nil, syscall.ECONNREFUSED
	}}
	if err := o.reachable(context.Background(), "172.18.0.2:30080"); err != nil || tries != 3 {
		t.Fatalf("reachable = %v after %d tries, want reachable on the third", err, tries)
	}
	tries = 0
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		tries++
		return nil, timeoutErr{}
	}
	if err := o.reachable(context.Background(), "172.18.0.2:30080"); err == nil || tries != reachableTries {
		t.Fatalf("always silent: %v after %d tries", err, tries)
	}
}
