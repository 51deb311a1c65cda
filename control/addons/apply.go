package addons

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// FieldManager owns the fields berth sets on the add-ons' objects.
const FieldManager = "berth"

// Applier server-side applies rendered add-on manifests with client-go's
// dynamic client: what `kubectl apply --server-side --force-conflicts`
// does, in berth-node's own process, without a kubectl process (the whole
// multicall binary's start, discovery and OpenAPI downloads) on the path
// to CoreDNS. Objects are applied in file and document order, so a
// CustomResourceDefinition precedes the resources of its kind; a kind the
// API server does not serve yet (its CRD was just created) fails this
// attempt, and the caller tries again.
type Applier struct {
	Client dynamic.Interface
	// Mapper finds the resource of each kind. A discovery-backed mapper
	// (restmapper.NewDeferredDiscoveryRESTMapper) is reset after a kind
	// it did not know, so the next attempt sees new CRDs.
	Mapper meta.RESTMapper
}

// resetter is a RESTMapper that can forget what it discovered.
type resetter interface{ Reset() }

// Apply applies every object of files (multi-document YAML, applied in
// the order given) and returns the first error, having tried every
// object: one object not applying yet does not hold back the others.
func (a *Applier) Apply(ctx context.Context, files ...[]byte) error {
	var errs []error
	unknownKind := false
	for _, data := range files {
		objs, err := decode(data)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			err := a.applyOne(ctx, obj)
			if meta.IsNoMatchError(err) {
				unknownKind = true
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if r, ok := a.Mapper.(resetter); ok && unknownKind {
		r.Reset()
	}
	return errors.Join(errs...)
}

func (a *Applier) applyOne(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	what := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
	if ns := obj.GetNamespace(); ns != "" {
		what = fmt.Sprintf("%s %s/%s", gvk.Kind, ns, obj.GetName())
	}
	mapping, err := a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("applying %s: %w", what, err)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	var client dynamic.ResourceInterface = a.Client.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		client = a.Client.Resource(mapping.Resource).Namespace(ns)
	}
	force := true
	if _, err := client.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
		return fmt.Errorf("applying %s: %w", what, err)
	}
	return nil
}

// decode splits a multi-document YAML file into objects, skipping empty
// documents.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, fmt.Errorf("decoding add-on manifest: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetKind() == "" || obj.GetName() == "" {
			return nil, fmt.Errorf("decoding add-on manifest: an object without kind or name: %v", m)
		}
		out = append(out, obj)
	}
}
