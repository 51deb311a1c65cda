package addons

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

var testRelease = versions.Release{Kubernetes: "v1.37.2", CoreDNS: "v1.15.0", Pause: "3.10.2"}

func render(t *testing.T) map[string][]byte {
	t.Helper()
	out, err := Render(&nodeconfig.Node{ClusterDomain: "cluster.local", DNSServiceIP: "10.96.0.10"}, testRelease)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decodeAll decodes every document of a manifest strictly (an unknown or
// duplicated field is an error) into client-go's typed objects.
func decodeAll(t *testing.T, name string, data []byte) []runtime.Object {
	t.Helper()
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: splitting documents: %v", name, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: decoding strictly: %v\n%s", name, err, doc)
		}
		objs = append(objs, obj)
	}
}

func TestRenderDecodesStrictly(t *testing.T) {
	out := render(t)
	if got, want := slices.Sorted(maps.Keys(out)), []string{"coredns.yaml", "storage.yaml"}; !slices.Equal(got, want) {
		t.Fatalf("add-ons = %v, want %v", got, want)
	}
	for name, data := range out {
		if bytes.Contains(data, []byte("{{")) {
			t.Errorf("%s has unrendered template actions", name)
		}
		if len(decodeAll(t, name, data)) == 0 {
			t.Errorf("%s holds no objects", name)
		}
	}
}

// The images every add-on runs are the node image's, under their upstream
// names, and are never pulled.
func TestAddonImagesComeWithTheNode(t *testing.T) {
	carried := []string{testRelease.CoreDNSImage(), versions.StorageImage, versions.HelperImage}
	check := func(where string, spec corev1.PodSpec) {
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			if !slices.Contains(carried, c.Image) {
				t.Errorf("%s: container %s runs %s, which the node image does not carry", where, c.Name, c.Image)
			}
			if c.ImagePullPolicy == corev1.PullAlways || c.ImagePullPolicy == "" {
				t.Errorf("%s: container %s has imagePullPolicy %q", where, c.Name, c.ImagePullPolicy)
			}
		}
	}
	for name, data := range render(t) {
		for _, obj := range decodeAll(t, name, data) {
			switch o := obj.(type) {
			case *appsv1.Deployment:
				check(name+" deployment "+o.Name, o.Spec.Template.Spec)
			case *corev1.ConfigMap:
				// local-path-provisioner's helper pod is a manifest inside
				// its ConfigMap.
				if helper, ok := o.Data["helperPod.yaml"]; ok {
					var pod corev1.Pod
					if err := yaml.UnmarshalStrict([]byte(helper), &pod); err != nil {
						t.Fatalf("%s: helper pod: %v", name, err)
					}
					check(name+" helper pod", pod.Spec)
				}
			}
		}
	}
}

func TestRenderCoreDNS(t *testing.T) {
	var deployment *appsv1.Deployment
	var service *corev1.Service
	var corefile string
	for _, obj := range decodeAll(t, "coredns.yaml", render(t)["coredns.yaml"]) {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			deployment = o
		case *corev1.Service:
			service = o
		case *corev1.ConfigMap:
			corefile = o.Data["Corefile"]
		}
	}
	if deployment == nil || service == nil || corefile == "" {
		t.Fatalf("coredns.yaml lacks a Deployment, Service or Corefile")
	}
	if got := deployment.Spec.Template.Spec.Containers[0].Image; got != "registry.k8s.io/coredns/coredns:v1.15.0" {
		t.Errorf("CoreDNS image = %s", got)
	}
	if service.Name != "kube-dns" || service.Namespace != "kube-system" || service.Spec.ClusterIP != "10.96.0.10" {
		t.Errorf("service = %s/%s %s, want kube-system/kube-dns 10.96.0.10", service.Namespace, service.Name, service.Spec.ClusterIP)
	}
	if !strings.Contains(corefile, "kubernetes cluster.local in-addr.arpa") {
		t.Errorf("Corefile does not serve cluster.local:\n%s", corefile)
	}
}

func TestRenderStorage(t *testing.T) {
	var class *storagev1.StorageClass
	for _, obj := range decodeAll(t, "storage.yaml", render(t)["storage.yaml"]) {
		if o, ok := obj.(*storagev1.StorageClass); ok {
			class = o
		}
	}
	if class == nil {
		t.Fatal("storage.yaml has no StorageClass")
	}
	if class.Name != "standard" || class.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Errorf("storage class %s, annotations %v: want the default class standard", class.Name, class.Annotations)
	}
}
