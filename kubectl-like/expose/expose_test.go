package expose_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/berth-dev/berth/kubectl-like/expose"
	"github.com/berth-dev/berth/kubectl-like/internal/fakeapi"
)

func int32p(n int32) *int32 { return &n }

func podSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Image: "nginx",
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
	}}}
}

func newServer(t *testing.T) *fakeapi.Server {
	t.Helper()
	sel := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(2),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "version": "v1"}}, Spec: podSpec()},
		},
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: int32p(1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "cache"}}, Spec: podSpec()},
		},
	}
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "default"},
		Spec: corev1.ReplicationControllerSpec{
			Replicas: int32p(1),
			Selector: map[string]string{"app": "legacy"},
			Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "legacy"}}, Spec: podSpec()},
		},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "default", Labels: map[string]string{"run": "solo"}}, Spec: podSpec()}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "internal", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	return fakeapi.New(t, dep, rs, rc, pod, svc)
}

func service(t *testing.T, s *fakeapi.Server, name string) *corev1.Service {
	t.Helper()
	svc, err := s.Clientset.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting service %s: %v", name, err)
	}
	return svc
}

func TestExposeDeployment(t *testing.T) {
	s := newServer(t)
	out, _, err := s.Run(t, expose.NewCmdExpose, "deployment", "web", "--port=80", "--target-port=8080", "--type=NodePort")
	if err != nil {
		t.Fatalf("expose: %v", err)
	}
	if strings.TrimSpace(out) != "service/web exposed" {
		t.Errorf("output = %q", out)
	}
	svc := service(t, s, "web")
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{"app": "web"}) {
		t.Errorf("selector = %v, want the deployment's selector app=web", svc.Spec.Selector)
	}
	if svc.Spec.Type != corev1.ServiceTypeNodePort {
		t.Errorf("type = %q, want NodePort", svc.Spec.Type)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort != intstr.FromInt32(8080) || svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports = %+v, want 80 -> 8080/TCP", svc.Spec.Ports)
	}
}

func TestExposeDerivesPortFromContainer(t *testing.T) {
	s := newServer(t)
	if _, _, err := s.Run(t, expose.NewCmdExpose, "rs", "cache", "--name=cache-svc"); err != nil {
		t.Fatalf("expose rs without --port: %v", err)
	}
	svc := service(t, s, "cache-svc")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 {
		t.Fatalf("ports = %+v, want the container port 8080", svc.Spec.Ports)
	}
	if svc.Spec.Ports[0].TargetPort != intstr.FromInt32(8080) {
		t.Errorf("target port = %v, want 8080", svc.Spec.Ports[0].TargetPort)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{"app": "cache"}) {
		t.Errorf("selector = %v", svc.Spec.Selector)
	}
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("type = %q, want the ClusterIP default", svc.Spec.Type)
	}
}

func TestExposePodUsesItsLabels(t *testing.T) {
	s := newServer(t)
	if _, _, err := s.Run(t, expose.NewCmdExpose, "pod", "solo", "--port=9000", "--target-port=http", "--protocol=UDP", "--name=solo-svc", "--type=LoadBalancer"); err != nil {
		t.Fatalf("expose pod: %v", err)
	}
	svc := service(t, s, "solo-svc")
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{"run": "solo"}) {
		t.Errorf("selector = %v, want the pod's labels", svc.Spec.Selector)
	}
	p := svc.Spec.Ports[0]
	if p.Port != 9000 || p.TargetPort != intstr.FromString("http") || p.Protocol != corev1.ProtocolUDP || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("service = %+v %q, want 9000 -> http/UDP LoadBalancer", p, svc.Spec.Type)
	}
}

func TestExposeServiceAndRC(t *testing.T) {
	s := newServer(t)
	if _, _, err := s.Run(t, expose.NewCmdExpose, "service", "internal", "--name=public", "--type=NodePort"); err != nil {
		t.Fatalf("expose service: %v", err)
	}
	pub := service(t, s, "public")
	if !reflect.DeepEqual(pub.Spec.Selector, map[string]string{"app": "web"}) || pub.Spec.Ports[0].Port != 80 {
		t.Errorf("exposed service = selector %v ports %+v", pub.Spec.Selector, pub.Spec.Ports)
	}

	out, _, err := s.Run(t, expose.NewCmdExpose, "rc", "legacy", "--port=80", "-o", "name")
	if err != nil {
		t.Fatalf("expose rc: %v", err)
	}
	if strings.TrimSpace(out) != "service/legacy" {
		t.Errorf("-o name output = %q", out)
	}
	if sel := service(t, s, "legacy").Spec.Selector; !reflect.DeepEqual(sel, map[string]string{"app": "legacy"}) {
		t.Errorf("rc selector = %v", sel)
	}
}

func TestExposeErrors(t *testing.T) {
	s := newServer(t)
	if _, _, err := s.Run(t, expose.NewCmdExpose, "deployment", "missing", "--port=80"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("exposing a missing deployment: %v", err)
	}
	noPorts := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "worker"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "worker"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "w", Image: "busybox"}}},
			},
		},
	}
	if _, err := s.Clientset.AppsV1().Deployments("default").Create(context.Background(), noPorts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Run(t, expose.NewCmdExpose, "deployment", "worker")
	if err == nil || !strings.Contains(err.Error(), "couldn't find port via --port flag or introspection") {
		t.Errorf("exposing a deployment without ports and without --port: %v", err)
	}
	if _, err := s.Clientset.CoreV1().Services("default").Get(context.Background(), "worker", metav1.GetOptions{}); err == nil {
		t.Error("a service was created by a failing expose")
	}
}
