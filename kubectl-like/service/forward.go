package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	kubectlutil "k8s.io/kubectl/pkg/util"
	"k8s.io/kubectl/pkg/util/podutils"
)

// errNoReadyPod is what PickPod wraps when no pod of the Service is ready.
var errNoReadyPod = errors.New("no ready pod")

// waitForPod picks a ready pod of svc like PickPod, waiting up to o.Wait
// for one: right after a deployment is exposed its pods may still start.
func (o *Options) waitForPod(ctx context.Context, svc *corev1.Service) (*corev1.Pod, error) {
	if o.Wait <= 0 {
		return PickPod(ctx, o.Client, svc)
	}
	note := startWaitNote(o.ErrOut, o.NoticeAfter)
	defer note.stop()
	var pod *corev1.Pod
	var last error
	err := wait.PollUntilContextTimeout(ctx, o.PollInterval, o.Wait, true, func(ctx context.Context) (bool, error) {
		pod, last = PickPod(ctx, o.Client, svc)
		switch {
		case last == nil:
			return true, nil
		case errors.Is(last, errNoReadyPod):
			note.set(fmt.Sprintf("a ready pod of service %s/%s to forward to", svc.Namespace, svc.Name))
			return false, nil
		case ctx.Err() != nil:
			return false, nil
		}
		return false, last
	})
	switch {
	case err == nil:
		return pod, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case wait.Interrupted(err) && last != nil:
		return nil, fmt.Errorf("%w (waited %v)", last, o.Wait)
	}
	return nil, err
}

// PickPod returns a ready, not terminating pod backing svc (selected by the
// Service's selector), preferring the alphabetically first for stable
// results.
func PickPod(ctx context.Context, client kubernetes.Interface, svc *corev1.Service) (*corev1.Pod, error) {
	if len(svc.Spec.Selector) == 0 {
		return nil, fmt.Errorf("service %s/%s has no selector, so there is no pod to forward to", svc.Namespace, svc.Name)
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	list, err := client.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing pods of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	var ready []corev1.Pod
	for _, p := range list.Items {
		if !sel.Matches(labels.Set(p.Labels)) { // servers always filter; fakes may not
			continue
		}
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podutils.IsPodReady(&p) {
			ready = append(ready, p)
		}
	}
	if len(ready) == 0 {
		return nil, fmt.Errorf("service %s/%s has %w to forward to (%d pod(s) match its selector %s)",
			svc.Namespace, svc.Name, errNoReadyPod, len(list.Items), sel)
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].Name < ready[j].Name })
	return &ready[0], nil
}

// PortMapping pairs a Service port with the pod port it forwards to.
type PortMapping struct {
	ServicePort corev1.ServicePort
	// PodPort is the container port the Service's targetPort resolves to.
	PodPort int32
}

// PortMappings resolves the TCP ports of svc to ports of pod (named target
// ports are looked up in the pod's containers). Ports that cannot be
// forwarded (UDP, SCTP) are returned in skipped.
func PortMappings(svc *corev1.Service, pod *corev1.Pod) (mappings []PortMapping, skipped []corev1.ServicePort, err error) {
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			skipped = append(skipped, p)
			continue
		}
		podPort, err := kubectlutil.LookupContainerPortNumberByServicePort(*svc, *pod, p.Port)
		if err != nil {
			return nil, nil, fmt.Errorf("resolving target port of service port %d on pod %s: %w", p.Port, pod.Name, err)
		}
		mappings = append(mappings, PortMapping{ServicePort: p, PodPort: podPort})
	}
	if len(mappings) == 0 {
		return nil, skipped, fmt.Errorf("service %s/%s has no TCP port to forward", svc.Namespace, svc.Name)
	}
	return mappings, skipped, nil
}

// Forwarder opens port-forwards to a pod.
type Forwarder interface {
	// Forward listens on 127.0.0.1 for each of podPorts (on a free local
	// port) and forwards connections to the pod until ctx ends. It returns
	// the local ports, in podPorts order, once listening, and a channel
	// that yields the forward's final error (nil after ctx ended).
	Forward(ctx context.Context, pod *corev1.Pod, podPorts []int32) (local []int32, done <-chan error, err error)
}

// SPDYForwarder forwards through the API server's pods/portforward
// subresource, over WebSockets when the server supports it, else SPDY.
type SPDYForwarder struct {
	Config *rest.Config
	Client kubernetes.Interface
	// ErrOut receives the port-forward library's error messages.
	ErrOut io.Writer
}

// Forward implements Forwarder.
func (f *SPDYForwarder) Forward(ctx context.Context, pod *corev1.Pod, podPorts []int32) ([]int32, <-chan error, error) {
	req := f.Client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward")
	url := req.URL()

	transport, upgrader, err := spdy.RoundTripperFor(f.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("setting up port-forward transport: %w", err)
	}
	var dialer httpstream.Dialer = spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	if ws, err := portforward.NewSPDYOverWebsocketDialer(url, f.Config); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}

	ports := make([]string, len(podPorts))
	for i, p := range podPorts {
		ports[i] = fmt.Sprintf(":%d", p)
	}
	stop := make(chan struct{})
	ready := make(chan struct{})
	errOut := f.ErrOut
	if errOut == nil {
		errOut = io.Discard
	}
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, ports, stop, ready, io.Discard, errOut)
	if err != nil {
		return nil, nil, fmt.Errorf("setting up port-forward to pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	select {
	case <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New("port-forward ended before it was ready")
		}
		return nil, nil, fmt.Errorf("port-forward to pod %s/%s: %w", pod.Namespace, pod.Name, err)
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	fwd, err := pf.GetPorts()
	if err != nil {
		return nil, nil, fmt.Errorf("reading forwarded ports: %w", err)
	}
	local := make([]int32, len(podPorts))
	for i, p := range podPorts {
		for _, fp := range fwd {
			if int32(fp.Remote) == p {
				local[i] = int32(fp.Local)
				break
			}
		}
	}
	return local, done, nil
}
