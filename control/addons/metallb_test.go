package addons

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

const testPool = "172.30.0.128-172.30.0.254"

func renderWithPool(t *testing.T, pool string) map[string][]byte {
	t.Helper()
	out, err := Render(&nodeconfig.Node{ClusterDomain: "cluster.local", DNSServiceIP: "10.96.0.10", LoadBalancerPool: pool}, testRelease)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// metallbObjects decodes MetalLB's add-on strictly: Kubernetes' own kinds
// and CRDs into their types; MetalLB's custom resources, which no scheme
// here knows, into maps.
func metallbObjects(t *testing.T, files map[string][]byte) (typed []runtime.Object, custom []map[string]any) {
	t.Helper()
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
	for _, name := range []string{"metallb-crds.yaml", "metallb.yaml"} {
		data, ok := files[name]
		if !ok {
			t.Fatalf("%s not rendered", name)
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var meta struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			gv, _ := schema.ParseGroupVersion(meta.APIVersion)
			if gv.Group == "metallb.io" {
				var obj map[string]any
				if err := yaml.Unmarshal(doc, &obj); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				custom = append(custom, obj)
				continue
			}
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: decoding strictly: %v", name, err)
			}
			typed = append(typed, obj)
		}
	}
	return typed, custom
}

func TestMetalLBOnlyWithAPool(t *testing.T) {
	for name := range renderWithPool(t, "") {
		if name == "metallb.yaml" || name == "metallb-crds.yaml" {
			t.Errorf("%s rendered without a LoadBalancer pool", name)
		}
	}
}

func TestRenderMetalLB(t *testing.T) {
	typed, custom := metallbObjects(t, renderWithPool(t, testPool))

	crds := map[string]*apiextensionsv1.CustomResourceDefinition{}
	var deployment *appsv1.Deployment
	var daemonSet *appsv1.DaemonSet
	for _, obj := range typed {
		switch o := obj.(type) {
		case *apiextensionsv1.CustomResourceDefinition:
			crds[o.Spec.Names.Kind] = o
			if c := o.Spec.Conversion; c != nil && c.Strategy == apiextensionsv1.WebhookConverter {
				t.Errorf("CRD %s converts through a webhook, which berth does not run", o.Name)
			}
		case *appsv1.Deployment:
			deployment = o
		case *appsv1.DaemonSet:
			daemonSet = o
		default:
			if gvk := obj.GetObjectKind().GroupVersionKind(); gvk.Group == "admissionregistration.k8s.io" {
				t.Errorf("%s rendered: berth runs MetalLB without webhooks", gvk.Kind)
			}
		}
	}
	// The controller and the speaker watch every one of these; a missing
	// CRD keeps their caches from syncing.
	for _, kind := range []string{"BFDProfile", "BGPAdvertisement", "BGPPeer", "Community", "ConfigurationState", "IPAddressPool", "L2Advertisement", "ServiceBGPStatus", "ServiceL2Status"} {
		if crds[kind] == nil {
			t.Errorf("no CRD for %s", kind)
		}
	}
	if deployment == nil || daemonSet == nil {
		t.Fatal("metallb.yaml lacks the controller Deployment or the speaker DaemonSet")
	}
	for _, c := range []struct {
		where string
		spec  corev1.PodSpec
		image string
	}{
		{"controller", deployment.Spec.Template.Spec, versions.MetalLBControllerImage},
		{"speaker", daemonSet.Spec.Template.Spec, versions.MetalLBSpeakerImage},
	} {
		ctr := c.spec.Containers[0]
		if ctr.Image != c.image || ctr.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("%s runs %s (%s), want %s from the node image", c.where, ctr.Image, ctr.ImagePullPolicy, c.image)
		}
		if !slices.Contains(ctr.Args, "--port=0") {
			t.Errorf("%s serves metrics: %v", c.where, ctr.Args)
		}
		var limit bool
		for _, e := range ctr.Env {
			limit = limit || e.Name == "GOMEMLIMIT"
		}
		if !limit {
			t.Errorf("%s runs without GOMEMLIMIT", c.where)
		}
	}
	if !daemonSet.Spec.Template.Spec.HostNetwork {
		t.Error("the speaker must run in the node's network namespace to answer ARP there")
	}
	if caps := daemonSet.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities; caps == nil || !slices.Contains(caps.Add, "NET_RAW") {
		t.Error("the speaker lacks NET_RAW (ARP)")
	}

	var pool, l2 map[string]any
	for _, o := range custom {
		kind := o["kind"].(string)
		if crds[kind] == nil {
			t.Errorf("%s has no CRD in the add-on", kind)
		}
		switch kind {
		case "IPAddressPool":
			pool = o
		case "L2Advertisement":
			l2 = o
		}
	}
	if pool == nil || l2 == nil {
		t.Fatal("no IPAddressPool or L2Advertisement")
	}
	addresses := pool["spec"].(map[string]any)["addresses"].([]any)
	if len(addresses) != 1 || addresses[0] != testPool {
		t.Errorf("pool addresses = %v, want [%s]", addresses, testPool)
	}
	poolName := pool["metadata"].(map[string]any)["name"]
	if pools := l2["spec"].(map[string]any)["ipAddressPools"].([]any); len(pools) != 1 || pools[0] != poolName {
		t.Errorf("L2Advertisement announces %v, want [%v]", pools, poolName)
	}
}
