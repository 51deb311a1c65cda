package addons

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

type resettingMapper struct {
	meta.RESTMapper
	resets int
}

func (m *resettingMapper) Reset() { m.resets++ }

func TestApplierAppliesInOrderServerSide(t *testing.T) {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	client := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	type call struct {
		resource, ns, name, manager string
		force                       bool
		patchType                   types.PatchType
	}
	var calls []call
	client.PrependReactor("patch", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		p := action.(k8stesting.PatchActionImpl)
		force := p.PatchOptions.Force != nil && *p.PatchOptions.Force
		calls = append(calls, call{p.Resource.Resource, p.Namespace, p.Name, p.PatchOptions.FieldManager, force, p.PatchType})
		return true, nil, nil
	})
	m := &resettingMapper{RESTMapper: mapper}
	a := &Applier{Client: client, Mapper: m}
	files := [][]byte{
		[]byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: one\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: one\n"),
		[]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"),
	}
	if err := a.Apply(context.Background(), files...); err != nil {
		t.Fatal(err)
	}
	want := []call{
		{"namespaces", "", "one", FieldManager, true, types.ApplyPatchType},
		{"configmaps", "one", "a", FieldManager, true, types.ApplyPatchType},
		{"configmaps", "default", "b", FieldManager, true, types.ApplyPatchType},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %+v, want %+v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
	if m.resets != 0 {
		t.Errorf("mapper reset %d times with every kind known", m.resets)
	}

	// A kind not served yet (its CRD was just applied) fails the attempt
	// after the others are applied, and makes the mapper forget.
	calls = nil
	crd := []byte("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: pool\n  namespace: one\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: one\n")
	err := a.Apply(context.Background(), crd)
	if err == nil || !strings.Contains(err.Error(), "IPAddressPool one/pool") {
		t.Fatalf("unknown kind: err = %v", err)
	}
	if len(calls) != 1 || calls[0].name != "c" {
		t.Errorf("the object after the unknown kind was not applied: %+v", calls)
	}
	if m.resets != 1 {
		t.Errorf("mapper reset %d times after an unknown kind, want 1", m.resets)
	}
}

func TestApplierRejectsBadManifests(t *testing.T) {
	a := &Applier{Client: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), Mapper: meta.NewDefaultRESTMapper(nil)}
	for _, bad := range []string{"kind: ConfigMap\nmetadata: {}\n", "{not yaml"} {
		if err := a.Apply(context.Background(), []byte(bad)); err == nil {
			t.Errorf("%q applied", bad)
		}
	}
}

// Every rendered add-on decodes into objects the applier accepts.
func TestRenderedAddonsDecode(t *testing.T) {
	for name, data := range render(t) {
		objs, err := decode(data)
		if err != nil || len(objs) == 0 {
			t.Errorf("%s: %d objects, %v", name, len(objs), err)
		}
	}
}
