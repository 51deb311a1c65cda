package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func testNode(name, internalIP string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}}
	if internalIP != "" {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: internalIP})
	}
	return n
}

func testService(typ corev1.ServiceType, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Type: typ, ClusterIP: "10.96.0.10", Selector: map[string]string{"app": "web"}, Ports: ports},
	}
}

var (
	httpPort  = corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web"), NodePort: 30080, Protocol: corev1.ProtocolTCP}
	adminPort = corev1.ServicePort{Name: "admin", Port: 9000, TargetPort: intstr.FromInt32(9090), NodePort: 30900, Protocol: corev1.ProtocolTCP}
	dnsPort   = corev1.ServicePort{Name: "dns", Port: 53, NodePort: 30053, Protocol: corev1.ProtocolUDP}
)

func nodes() []corev1.Node {
	// Deliberately unsorted, and one node without an address.
	return []corev1.Node{*testNode("worker", "172.18.0.3"), *testNode("control-plane", "172.18.0.2"), *testNode("ghost", "")}
}

func urls(t *testing.T, targets []Target, format string) []string {
	t.Helper()
	tmpl, err := ParseFormat(format)
	if err != nil {
		t.Fatal(err)
	}
	if err := Render(tmpl, targets); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tg := range targets {
		out = append(out, tg.URL)
	}
	return out
}

func TestTargetsNodePort(t *testing.T) {
	targets, note, err := Targets(testService(corev1.ServiceTypeNodePort, httpPort, adminPort), nodes())
	if err != nil || note != "" {
		t.Fatalf("Targets: %v %q", err, note)
	}
	want := []string{"http://172.18.0.2:30080", "http://172.18.0.3:30080", "http://172.18.0.2:30900", "http://172.18.0.3:30900"}
	if got := urls(t, targets, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("URLs = %v, want %v", got, want)
	}
	if targets[0].Node != "control-plane" || targets[0].Via != ViaNodePort || targets[0].ServicePort != 80 || targets[0].TargetPort != "web" {
		t.Errorf("first target = %+v", targets[0])
	}
	got := urls(t, targets, "{{.Name}} {{.Node}} {{.IP}}:{{.Port}} -> {{.ServicePort}}/{{.Protocol}}")
	if got[3] != "admin worker 172.18.0.3:30900 -> 9000/TCP" {
		t.Errorf("custom format = %q", got[3])
	}
	if first := FirstPerPort(targets); len(first) != 2 || first[0].IP != "172.18.0.2" || first[1].Port != 30900 {
		t.Errorf("FirstPerPort = %+v", first)
	}
}

func TestTargetsLoadBalancer(t *testing.T) {
	svc := testService(corev1.ServiceTypeLoadBalancer, httpPort)
	targets, note, err := Targets(svc, nodes())
	if err != nil {
		t.Fatal(err)
	}
	if got := urls(t, targets, ""); !reflect.DeepEqual(got, []string{"http://172.18.0.2:30080", "http://172.18.0.3:30080"}) {
		t.Errorf("pending LoadBalancer URLs = %v, want the node ports", got)
	}
	if !strings.Contains(note, "no load balancer ingress yet") {
		t.Errorf("note = %q", note)
	}

	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.18.255.200"}, {Hostname: "lb.example"}}
	targets, note, err = Targets(svc, nodes())
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	if got := urls(t, targets, ""); !reflect.DeepEqual(got, []string{"http://172.18.255.200:80", "http://lb.example:80"}) {
		t.Errorf("LoadBalancer URLs = %v", got)
	}
	if targets[0].Via != ViaLoadBalancer {
		t.Errorf("via = %q", targets[0].Via)
	}

	noNodePorts := testService(corev1.ServiceTypeLoadBalancer, corev1.ServicePort{Port: 80})
	var nr *NotReachableError
	if _, _, err := Targets(noNodePorts, nodes()); !errors.As(err, &nr) {
		t.Errorf("pending LoadBalancer without node ports: %v", err)
	}
}

func TestTargetsClusterIP(t *testing.T) {
	_, _, err := Targets(testService(corev1.ServiceTypeClusterIP, httpPort), nodes())
	var nr *NotReachableError
	if !errors.As(err, &nr) {
		t.Fatalf("error = %v (%T), want *NotReachableError", err, err)
	}
	for _, want := range []string{"service default/web is of type ClusterIP and only reachable inside the cluster (at 10.96.0.10)",
		"berth service web -n default --forward", "port-forward -n default service/web"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%s", want, err)
		}
	}
	headless := testService("", httpPort)
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	if _, _, err := Targets(headless, nil); err == nil || strings.Contains(err.Error(), "(at None)") || !strings.Contains(err.Error(), "ClusterIP") {
		t.Errorf("headless service: %v", err)
	}
}

func TestTargetsExternalNameAndIPv6(t *testing.T) {
	svc := testService(corev1.ServiceTypeExternalName, corev1.ServicePort{Port: 443})
	svc.Spec.ExternalName = "db.example.com"
	targets, _, err := Targets(svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := urls(t, targets, "https://{{.IP}}:{{.Port}}"); !reflect.DeepEqual(got, []string{"https://db.example.com:443"}) {
		t.Errorf("ExternalName URLs = %v", got)
	}

	targets, _, err = Targets(testService(corev1.ServiceTypeNodePort, httpPort), []corev1.Node{*testNode("v6", "fd00::2")})
	if err != nil {
		t.Fatal(err)
	}
	if got := urls(t, targets, "http://{{.HostPort}}"); got[0] != "http://[fd00::2]:30080" {
		t.Errorf("IPv6 HostPort URL = %q", got[0])
	}
}

func TestParseFormatErrors(t *testing.T) {
	if _, err := ParseFormat("{{.IP"); err == nil {
		t.Error("unterminated template accepted")
	}
	tmpl, err := ParseFormat("{{.Nope}}")
	if err != nil {
		t.Fatal(err)
	}
	if err := Render(tmpl, []Target{{IP: "1.2.3.4", Port: 1}}); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("unknown field: %v", err)
	}
}

// fakeForwarder records what it was asked to forward.
type fakeForwarder struct {
	pod   string
	ports []int32
	base  int32
}

func (f *fakeForwarder) Forward(ctx context.Context, pod *corev1.Pod, podPorts []int32) ([]int32, <-chan error, error) {
	f.pod, f.ports = pod.Name, podPorts
	local := make([]int32, len(podPorts))
	for i := range podPorts {
		local[i] = f.base + int32(i)
	}
	return local, make(chan error), nil
}

func readyPod(name string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
			{Name: "web", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

type harness struct {
	o           *Options
	client      *fake.Clientset
	out, errOut *bytes.Buffer
	fwd         *fakeForwarder
	opened      []string
	waited      bool

	mu     sync.Mutex
	dialed []string
	// answer decides how a dial to addr ends, the n-th time (from 1).
	answer func(addr string, n int) error
}

// readySlice is an EndpointSlice of service web with ready endpoints.
func readySlice(ready ...bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
	}
	for i, r := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.1.%d", i+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(r)},
		})
	}
	return s
}

// newHarness runs service commands against a fake cluster of two nodes,
// three pods (web-b and web-c ready) and a ready endpoint, where every
// dial fails with dialErr (nil: connects).
func newHarness(svc *corev1.Service, dialErr error) *harness {
	client := fake.NewClientset(svc, testNode("worker", "172.18.0.3"), testNode("control-plane", "172.18.0.2"),
		readyPod("web-b", true), readyPod("web-a", false), readyPod("web-c", true), readySlice(true))
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	h := &harness{client: client, out: out, errOut: errOut, fwd: &fakeForwarder{base: 40000},
		answer: func(string, int) error { return dialErr }}
	o := NewOptions(streams, nil)
	o.Name, o.Namespace, o.Client, o.Forwarder = svc.Name, svc.Namespace, client, h.fwd
	o.PollInterval, o.Wait, o.NoticeAfter = 5*time.Millisecond, 2*time.Second, time.Minute
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.mu.Lock()
		h.dialed = append(h.dialed, addr)
		n := 0
		for _, a := range h.dialed {
			if a == addr {
				n++
			}
		}
		answer := h.answer
		h.mu.Unlock()
		if err := answer(addr, n); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		c1, c2 := net.Pipe()
		_ = c2.Close()
		return c1, nil
	}
	o.OpenURL = func(u string) error { h.opened = append(h.opened, u); return nil }
	o.WaitForStop = func(ctx context.Context, done <-chan error) error { h.waited = true; return nil }
	h.o = o
	return h
}

func (h *harness) dials() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.dialed...)
}

func (h *harness) run(t *testing.T) error {
	t.Helper()
	if err := h.o.Validate(); err != nil {
		return err
	}
	return h.o.Run(context.Background())
}

func TestRunNodePortURLs(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort, adminPort), nil)
	h.o.URLOnly = true
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	want := "http://172.18.0.2:30080\nhttp://172.18.0.3:30080\nhttp://172.18.0.2:30900\nhttp://172.18.0.3:30900\n"
	if h.out.String() != want {
		t.Errorf("stdout = %q, want %q", h.out, want)
	}
	// The reachability check, then each printed URL once: all answer.
	dialed := h.dials()
	slices.Sort(dialed[1:])
	if want := []string{"172.18.0.2:30080", "172.18.0.2:30080", "172.18.0.2:30900", "172.18.0.3:30080", "172.18.0.3:30900"}; !reflect.DeepEqual(dialed, want) {
		t.Errorf("dialed %v, want %v", dialed, want)
	}
	if h.errOut.Len() != 0 {
		t.Errorf("stderr = %q, want nothing when the URLs answer at once", h.errOut)
	}
	if h.fwd.pod != "" || h.waited {
		t.Error("port-forward used although the node was reachable")
	}
}

func TestRunOneFormatOpen(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort, adminPort), nil)
	h.o.URLOnly, h.o.One, h.o.Open, h.o.Format = true, true, true, "{{.IP}}:{{.Port}}"
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "172.18.0.2:30080\n" {
		t.Errorf("--one --format output = %q", h.out)
	}
	if !reflect.DeepEqual(h.opened, []string{"172.18.0.2:30080"}) {
		t.Errorf("--open opened %v", h.opened)
	}

	h = newHarness(testService(corev1.ServiceTypeNodePort, httpPort, adminPort), nil)
	h.o.Open = true
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.opened, []string{"http://172.18.0.2:30080", "http://172.18.0.2:30900"}) {
		t.Errorf("--open without --one opened %v, want the first URL of each port", h.opened)
	}
	if !strings.HasPrefix(h.out.String(), "NAMESPACE") || !strings.Contains(h.out.String(), "http 80/TCP") {
		t.Errorf("table output = %q", h.out)
	}
}

func TestRunJSON(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort), nil)
	h.o.Output = "json"
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	var got []Target
	if err := json.Unmarshal(h.out.Bytes(), &got); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, h.out)
	}
	if len(got) != 2 || got[0].URL != "http://172.18.0.2:30080" || got[0].NodePort != 30080 || got[0].Node != "control-plane" {
		t.Errorf("-o json = %+v", got)
	}
	h.o.URLOnly = true
	if err := h.o.Validate(); err == nil {
		t.Error("--url with -o json accepted")
	}
}

func TestRunFallsBackToForwardWhenUnreachable(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort, adminPort, dnsPort), errors.New("i/o timeout"))
	h.o.URLOnly = true
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "http://127.0.0.1:40000\nhttp://127.0.0.1:40001\n" {
		t.Errorf("stdout = %q, want the forwarded URLs", h.out)
	}
	if h.fwd.pod != "web-b" || !reflect.DeepEqual(h.fwd.ports, []int32{8080, 9090}) {
		t.Errorf("forwarded pod %q ports %v, want ready pod web-b ports [8080 9090]", h.fwd.pod, h.fwd.ports)
	}
	e := h.errOut.String()
	for _, want := range []string{"172.18.0.2:30080 is not reachable from this host (dial tcp: i/o timeout); forwarding service default/web through 127.0.0.1",
		"not forwarding UDP port 53", "press Ctrl-C to stop"} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr lacks %q:\n%s", want, e)
		}
	}
	if !h.waited {
		t.Error("the forward was not kept open")
	}
}

func TestRunForceForwardEnv(t *testing.T) {
	t.Setenv(ForceForwardEnv, "1")
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort), nil)
	// Complete reads the environment; only that part is needed here.
	if err := h.o.Complete(nil, nil, []string{"web"}); err != nil {
		t.Fatal(err)
	}
	h.o.URLOnly = true
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if d := h.dials(); len(d) != 0 {
		t.Errorf("dialed %v although %s=1", d, ForceForwardEnv)
	}
	if h.out.String() != "http://127.0.0.1:40000\n" || !strings.Contains(h.errOut.String(), ForceForwardEnv+"=1: forwarding") {
		t.Errorf("stdout %q stderr %q", h.out, h.errOut)
	}
}

func TestRunClusterIP(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeClusterIP, httpPort), nil)
	err := h.run(t)
	if err == nil || !strings.Contains(err.Error(), "--forward") {
		t.Fatalf("ClusterIP without --forward: %v", err)
	}
	if h.out.Len() != 0 || h.fwd.pod != "" {
		t.Errorf("printed %q / forwarded %q for an unreachable service", h.out, h.fwd.pod)
	}

	h = newHarness(testService(corev1.ServiceTypeClusterIP, httpPort), nil)
	h.o.Forward, h.o.URLOnly = true, true
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if h.out.String() != "http://127.0.0.1:40000\n" || h.fwd.pod != "web-b" || !reflect.DeepEqual(h.fwd.ports, []int32{8080}) {
		t.Errorf("--forward: stdout %q pod %q ports %v", h.out, h.fwd.pod, h.fwd.ports)
	}
	if len(h.dials()) != 0 {
		t.Error("--forward should not check reachability")
	}
}

func TestRunMissingService(t *testing.T) {
	h := newHarness(testService(corev1.ServiceTypeNodePort, httpPort), nil)
	h.o.Name = "nope"
	if err := h.run(t); err == nil || !strings.Contains(err.Error(), "getting service default/nope") {
		t.Errorf("error = %v", err)
	}
}

func TestPickPodAndPortMappings(t *testing.T) {
	svc := testService(corev1.ServiceTypeClusterIP, httpPort, adminPort, dnsPort)
	client := fake.NewClientset(readyPod("web-a", false))
	if _, err := PickPod(context.Background(), client, svc); err == nil || !strings.Contains(err.Error(), "no ready pod") {
		t.Errorf("PickPod without ready pods: %v", err)
	}
	noSel := svc.DeepCopy()
	noSel.Spec.Selector = nil
	if _, err := PickPod(context.Background(), client, noSel); err == nil || !strings.Contains(err.Error(), "no selector") {
		t.Errorf("PickPod without selector: %v", err)
	}

	pod := readyPod("web-a", true)
	m, skipped, err := PortMappings(svc, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[0].PodPort != 8080 || m[1].PodPort != 9090 || len(skipped) != 1 || skipped[0].Port != 53 {
		t.Errorf("mappings %+v skipped %+v", m, skipped)
	}
	bad := testService(corev1.ServiceTypeClusterIP, corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("nope")})
	if _, _, err := PortMappings(bad, pod); err == nil {
		t.Error("unknown named target port accepted")
	}
}
