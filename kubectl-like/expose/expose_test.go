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

// kubectl's expose semantics are kubectl's own and tested there; these
// tests check berth's wiring: the command runs on berth's connection flags
// and returns kubectl's failures as errors.
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
	return fakeapi.New(t, dep)
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

func TestExposeErrors(t *testing.T) {
	s := newServer(t)
	if _, _, err := s.Run(t, expose.NewCmdExpose, "deployment", "missing", "--port=80"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("exposing a missing deployment: %v", err)
	}
}
