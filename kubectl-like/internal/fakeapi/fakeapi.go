// Package fakeapi serves the Kubernetes REST API over HTTP from a client-go
// fake clientset, so that commands which build their own REST clients from
// a kubeconfig (kubectl's resource builder, scale client, discovery) can be
// tested against the same fake.Clientset, reactors included, that unit
// tests use directly. It covers the resources the berth commands touch.
package fakeapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
)

type resourceInfo struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	shortNames []string
	scalable   bool
}

var resources = []resourceInfo{
	{gvr: corev1.SchemeGroupVersion.WithResource("pods"), kind: "Pod", namespaced: true, shortNames: []string{"po"}},
	{gvr: corev1.SchemeGroupVersion.WithResource("services"), kind: "Service", namespaced: true, shortNames: []string{"svc"}},
	{gvr: corev1.SchemeGroupVersion.WithResource("nodes"), kind: "Node", shortNames: []string{"no"}},
	{gvr: corev1.SchemeGroupVersion.WithResource("namespaces"), kind: "Namespace", shortNames: []string{"ns"}},
	{gvr: corev1.SchemeGroupVersion.WithResource("replicationcontrollers"), kind: "ReplicationController", namespaced: true, shortNames: []string{"rc"}, scalable: true},
	{gvr: corev1.SchemeGroupVersion.WithResource("endpoints"), kind: "Endpoints", namespaced: true, shortNames: []string{"ep"}},
	{gvr: appsv1.SchemeGroupVersion.WithResource("deployments"), kind: "Deployment", namespaced: true, shortNames: []string{"deploy"}, scalable: true},
	{gvr: appsv1.SchemeGroupVersion.WithResource("replicasets"), kind: "ReplicaSet", namespaced: true, shortNames: []string{"rs"}, scalable: true},
	{gvr: appsv1.SchemeGroupVersion.WithResource("statefulsets"), kind: "StatefulSet", namespaced: true, shortNames: []string{"sts"}, scalable: true},
	{gvr: appsv1.SchemeGroupVersion.WithResource("daemonsets"), kind: "DaemonSet", namespaced: true, shortNames: []string{"ds"}},
	{gvr: policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"), kind: "PodDisruptionBudget", namespaced: true, shortNames: []string{"pdb"}},
}

func lookup(gv schema.GroupVersion, resource string) (resourceInfo, bool) {
	for _, r := range resources {
		if r.gvr.GroupVersion() == gv && r.gvr.Resource == resource {
			return r, true
		}
	}
	return resourceInfo{}, false
}

// Server is an HTTP API server backed by Clientset.
type Server struct {
	Clientset *fake.Clientset
	// URL is the server's base URL.
	URL string
	// Kubeconfig is the path of a kubeconfig whose context "berth-test"
	// (namespace "default") points at the server; a second context
	// "other" points at an unreachable address.
	Kubeconfig string

	srv *httptest.Server
	dir string
}

// New starts a server holding objs; it stops when the test ends.
func New(t testing.TB, objs ...runtime.Object) *Server {
	t.Helper()
	cs := fake.NewClientset(objs...)
	EvictionDeletesPods(cs)
	s := &Server{Clientset: cs, dir: t.TempDir()}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.Kubeconfig = filepath.Join(s.dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: berth-test
  cluster:
    server: %s
- name: other
  cluster:
    server: http://127.0.0.1:1
contexts:
- name: berth-test
  context:
    cluster: berth-test
    user: berth-test
    namespace: default
- name: other
  context:
    cluster: other
    user: berth-test
current-context: other
users:
- name: berth-test
  user:
    token: fake
`, s.URL)
	if err := os.WriteFile(s.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatalf("writing kubeconfig: %v", err)
	}
	return s
}

// ConfigFlags returns connection flags selecting the server's context
// "berth-test", with the discovery cache in a temporary directory.
func (s *Server) ConfigFlags() *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	kc, ctx, cache := s.Kubeconfig, "berth-test", filepath.Join(s.dir, "cache")
	f.KubeConfig, f.Context, f.CacheDir = &kc, &ctx, &cache
	return f
}

// EvictionDeletesPods makes accepted evictions delete the pod, as the real
// API server does (the plain fake only records them), and lists the
// policy/v1 eviction subresource in the fake's discovery, where kubectl's
// drain helper looks before it evicts rather than deletes. Reactors
// prepended later (for example one refusing evictions) take precedence.
func EvictionDeletesPods(cs *fake.Clientset) {
	cs.Resources = append(cs.Resources, &metav1.APIResourceList{
		GroupVersion: "v1",
		APIResources: []metav1.APIResource{{Name: "pods/eviction", Namespaced: true, Group: "policy", Version: "v1", Kind: "Eviction"}},
	})
	cs.PrependReactor("create", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev, ok := action.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction)
		if !ok {
			return false, nil, nil
		}
		if ev.DeleteOptions != nil && len(ev.DeleteOptions.DryRun) > 0 {
			_, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), ev.Namespace, ev.Name)
			return true, nil, err
		}
		err := cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), ev.Namespace, ev.Name)
		return true, nil, err
	})
}

// PodListsHonourFieldSelectors makes pod lists apply their field selector
// (spec.nodeName, status.phase, name, namespace), as the API server does;
// the plain fake only applies label selectors. kubectl's drain helper
// lists a node's pods with one.
func PodListsHonourFieldSelectors(cs *fake.Clientset) {
	cs.PrependReactor("list", "pods", func(action clienttesting.Action) (bool, runtime.Object, error) {
		restrictions := action.(clienttesting.ListAction).GetListRestrictions()
		if restrictions.Fields == nil || restrictions.Fields.Empty() {
			return false, nil, nil
		}
		obj, err := cs.Tracker().List(corev1.SchemeGroupVersion.WithResource("pods"), corev1.SchemeGroupVersion.WithKind("Pod"), action.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		kept := list.Items[:0]
		for _, p := range list.Items {
			if (restrictions.Labels == nil || restrictions.Labels.Matches(labels.Set(p.Labels))) && restrictions.Fields.Matches(fieldSet(&p, &p)) {
				kept = append(kept, p)
			}
		}
		list.Items = kept
		return true, list, nil
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	obj, code, err := s.handle(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, code, obj)
}

func writeJSON(w http.ResponseWriter, code int, obj any) {
	if o, ok := obj.(runtime.Object); ok {
		setKind(o)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	var status metav1.Status
	if se, ok := err.(apierrors.APIStatus); ok {
		status = se.Status()
	} else {
		status = apierrors.NewInternalError(err).Status()
	}
	status.Kind, status.APIVersion = "Status", "v1"
	if status.Code == 0 {
		status.Code = http.StatusInternalServerError
	}
	writeJSON(w, int(status.Code), &status)
}

func setKind(obj runtime.Object) {
	if !obj.GetObjectKind().GroupVersionKind().Empty() {
		return
	}
	if gvks, _, err := scheme.Scheme.ObjectKinds(obj); err == nil && len(gvks) > 0 {
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	}
}

// request is a parsed resource request.
type request struct {
	info        resourceInfo
	namespace   string
	name        string
	subresource string
}

func (s *Server) handle(r *http.Request) (any, int, error) {
	path := strings.Trim(r.URL.Path, "/")
	switch path {
	case "version":
		return &version.Info{Major: "1", Minor: "36", GitVersion: "v1.36.3", Platform: "linux/amd64"}, 200, nil
	case "api":
		return &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}}, 200, nil
	case "apis":
		return groupList(), 200, nil
	}
	parts := strings.Split(path, "/")
	var gv schema.GroupVersion
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		gv, parts = schema.GroupVersion{Version: parts[1]}, parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		gv, parts = schema.GroupVersion{Group: parts[1], Version: parts[2]}, parts[3:]
	default:
		return nil, 0, apierrors.NewNotFound(schema.GroupResource{Resource: "path"}, r.URL.Path)
	}
	if len(parts) == 0 {
		list := resourceList(gv)
		if list == nil {
			return nil, 0, apierrors.NewNotFound(schema.GroupResource{Resource: "groupversion"}, gv.String())
		}
		return list, 200, nil
	}
	var req request
	if parts[0] == "namespaces" && len(parts) >= 3 {
		req.namespace, parts = parts[1], parts[2:]
	}
	info, ok := lookup(gv, parts[0])
	if !ok {
		return nil, 0, apierrors.NewNotFound(schema.GroupResource{Group: gv.Group, Resource: parts[0]}, "")
	}
	req.info = info
	if len(parts) > 1 {
		req.name = parts[1]
	}
	if len(parts) > 2 {
		req.subresource = parts[2]
	}
	q := r.URL.Query()
	dryRun := len(q["dryRun"]) > 0
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, 0, apierrors.NewBadRequest(err.Error())
	}

	switch {
	case r.Method == http.MethodGet && req.name == "":
		if q.Get("watch") == "true" || q.Get("watch") == "1" {
			return nil, 0, apierrors.NewMethodNotSupported(info.gvr.GroupResource(), "watch")
		}
		return s.list(req, q.Get("labelSelector"), q.Get("fieldSelector"))
	case r.Method == http.MethodGet && req.subresource == "scale" && info.scalable:
		return s.getScale(req)
	case r.Method == http.MethodGet:
		obj, err := s.Clientset.Invokes(clienttesting.NewGetSubresourceAction(info.gvr, req.namespace, req.subresource, req.name), nil)
		return obj, 200, err
	case r.Method == http.MethodPost:
		obj, err := decode(body)
		if err != nil {
			return nil, 0, err
		}
		if req.name != "" {
			action := clienttesting.NewCreateSubresourceAction(info.gvr, req.name, req.subresource, req.namespace, obj)
			out, err := s.Clientset.Invokes(action, nil)
			if out == nil && err == nil {
				out = &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}
			}
			return out, http.StatusCreated, err
		}
		if dryRun {
			return obj, http.StatusCreated, nil
		}
		out, err := s.Clientset.Invokes(clienttesting.NewCreateAction(info.gvr, req.namespace, obj), nil)
		return out, http.StatusCreated, err
	case (r.Method == http.MethodPut || r.Method == http.MethodPatch) && req.subresource == "scale" && info.scalable:
		return s.updateScale(req, r, body, dryRun)
	case r.Method == http.MethodPut:
		obj, err := decode(body)
		if err != nil {
			return nil, 0, err
		}
		if dryRun {
			return obj, 200, nil
		}
		out, err := s.Clientset.Invokes(clienttesting.NewUpdateSubresourceAction(info.gvr, req.subresource, req.namespace, obj), nil)
		return out, 200, err
	case r.Method == http.MethodPatch:
		pt := types.PatchType(strings.Split(r.Header.Get("Content-Type"), ";")[0])
		if dryRun {
			return s.dryRunPatch(req, pt, body)
		}
		var subs []string
		if req.subresource != "" {
			subs = []string{req.subresource}
		}
		out, err := s.Clientset.Invokes(clienttesting.NewPatchSubresourceAction(info.gvr, req.namespace, req.name, pt, body, subs...), nil)
		return out, 200, err
	case r.Method == http.MethodDelete:
		if dryRun {
			obj, err := s.Clientset.Invokes(clienttesting.NewGetAction(info.gvr, req.namespace, req.name), nil)
			return obj, 200, err
		}
		_, err := s.Clientset.Invokes(clienttesting.NewDeleteAction(info.gvr, req.namespace, req.name), nil)
		return &metav1.Status{Status: metav1.StatusSuccess, Code: 200}, 200, err
	}
	return nil, 0, apierrors.NewMethodNotSupported(info.gvr.GroupResource(), r.Method)
}

func decode(body []byte) (runtime.Object, error) {
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decoding body: %v", err))
	}
	return obj, nil
}

func (s *Server) list(req request, labelSel, fieldSel string) (any, int, error) {
	gvk := req.info.gvr.GroupVersion().WithKind(req.info.kind)
	obj, err := s.Clientset.Invokes(clienttesting.NewListAction(req.info.gvr, gvk, req.namespace, metav1.ListOptions{}), nil)
	if err != nil {
		return nil, 0, err
	}
	ls, err := labels.Parse(labelSel)
	if err != nil {
		return nil, 0, apierrors.NewBadRequest(err.Error())
	}
	fs, err := fields.ParseSelector(fieldSel)
	if err != nil {
		return nil, 0, apierrors.NewBadRequest(err.Error())
	}
	items, err := meta.ExtractList(obj)
	if err != nil {
		return nil, 0, err
	}
	var kept []runtime.Object
	for _, item := range items {
		acc, err := meta.Accessor(item)
		if err != nil {
			return nil, 0, err
		}
		if !ls.Matches(labels.Set(acc.GetLabels())) || !fs.Matches(fieldSet(item, acc)) {
			continue
		}
		kept = append(kept, item)
	}
	if err := meta.SetList(obj, kept); err != nil {
		return nil, 0, err
	}
	return obj, 200, nil
}

func fieldSet(obj runtime.Object, acc metav1.Object) fields.Set {
	set := fields.Set{"metadata.name": acc.GetName(), "metadata.namespace": acc.GetNamespace()}
	if pod, ok := obj.(*corev1.Pod); ok {
		set["spec.nodeName"] = pod.Spec.NodeName
		set["status.phase"] = string(pod.Status.Phase)
	}
	return set
}

// scaleOf builds the scale subresource of a scalable object.
func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	var (
		spec     *int32
		current  int32
		selector *metav1.LabelSelector
	)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		spec, current, selector = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector
	case *appsv1.ReplicaSet:
		spec, current, selector = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector
	case *appsv1.StatefulSet:
		spec, current, selector = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector
	case *corev1.ReplicationController:
		spec, current = o.Spec.Replicas, o.Status.Replicas
		selector = &metav1.LabelSelector{MatchLabels: o.Spec.Selector}
	default:
		return nil, fmt.Errorf("%T has no scale subresource", obj)
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(),
			ResourceVersion: acc.GetResourceVersion(), CreationTimestamp: acc.GetCreationTimestamp()},
		Status: autoscalingv1.ScaleStatus{Replicas: current},
	}
	sc.Spec.Replicas = 1
	if spec != nil {
		sc.Spec.Replicas = *spec
	}
	if selector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(selector); err == nil {
			sc.Status.Selector = sel.String()
		}
	}
	return sc, nil
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
	case *corev1.ReplicationController:
		o.Spec.Replicas = &n
	}
}

func (s *Server) getObject(req request) (runtime.Object, error) {
	return s.Clientset.Invokes(clienttesting.NewGetAction(req.info.gvr, req.namespace, req.name), nil)
}

func (s *Server) getScale(req request) (any, int, error) {
	obj, err := s.getObject(req)
	if err != nil {
		return nil, 0, err
	}
	sc, err := scaleOf(obj)
	return sc, 200, err
}

func (s *Server) updateScale(req request, r *http.Request, body []byte, dryRun bool) (any, int, error) {
	obj, err := s.getObject(req)
	if err != nil {
		return nil, 0, err
	}
	current, err := scaleOf(obj)
	if err != nil {
		return nil, 0, err
	}
	var replicas int32
	if r.Method == http.MethodPut {
		var sc autoscalingv1.Scale
		if err := json.Unmarshal(body, &sc); err != nil {
			return nil, 0, apierrors.NewBadRequest(err.Error())
		}
		if sc.ResourceVersion != "" && sc.ResourceVersion != current.ResourceVersion {
			return nil, 0, apierrors.NewConflict(req.info.gvr.GroupResource(), req.name,
				fmt.Errorf("the object has been modified"))
		}
		replicas = sc.Spec.Replicas
	} else {
		var patch struct {
			Spec struct {
				Replicas *int32 `json:"replicas"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(body, &patch); err != nil || patch.Spec.Replicas == nil {
			return nil, 0, apierrors.NewBadRequest(fmt.Sprintf("unsupported scale patch %s", body))
		}
		replicas = *patch.Spec.Replicas
	}
	current.Spec.Replicas = replicas
	if dryRun {
		return current, 200, nil
	}
	obj = obj.DeepCopyObject()
	setReplicas(obj, replicas)
	if _, err := s.Clientset.Invokes(clienttesting.NewUpdateSubresourceAction(req.info.gvr, "scale", req.namespace, obj), nil); err != nil {
		return nil, 0, err
	}
	return current, 200, nil
}

// dryRunPatch computes a patch's result without storing it.
func (s *Server) dryRunPatch(req request, pt types.PatchType, body []byte) (any, int, error) {
	tmp := fake.NewClientset()
	obj, err := s.getObject(req)
	if err != nil {
		return nil, 0, err
	}
	if err := tmp.Tracker().Add(obj); err != nil {
		return nil, 0, err
	}
	out, err := tmp.Invokes(clienttesting.NewPatchAction(req.info.gvr, req.namespace, req.name, pt, body), nil)
	return out, 200, err
}

func groupList() *metav1.APIGroupList {
	seen := map[string]*metav1.APIGroup{}
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, r := range resources {
		g := r.gvr.Group
		if g == "" {
			continue
		}
		if _, ok := seen[g]; ok {
			continue
		}
		gvd := metav1.GroupVersionForDiscovery{GroupVersion: r.gvr.GroupVersion().String(), Version: r.gvr.Version}
		list.Groups = append(list.Groups, metav1.APIGroup{Name: g, Versions: []metav1.GroupVersionForDiscovery{gvd}, PreferredVersion: gvd})
		seen[g] = &list.Groups[len(list.Groups)-1]
	}
	return list
}

func resourceList(gv schema.GroupVersion) *metav1.APIResourceList {
	var out []metav1.APIResource
	for _, r := range resources {
		if r.gvr.GroupVersion() != gv {
			continue
		}
		out = append(out, metav1.APIResource{
			Name: r.gvr.Resource, SingularName: strings.ToLower(r.kind), Namespaced: r.namespaced, Kind: r.kind,
			ShortNames: r.shortNames,
			Verbs:      metav1.Verbs{"create", "delete", "get", "list", "patch", "update"},
		})
		if r.scalable {
			out = append(out, metav1.APIResource{
				Name: r.gvr.Resource + "/scale", Namespaced: true, Group: "autoscaling", Version: "v1", Kind: "Scale",
				Verbs: metav1.Verbs{"get", "patch", "update"},
			})
		}
		if r.gvr.Resource == "pods" {
			out = append(out, metav1.APIResource{
				Name: "pods/eviction", Namespaced: true, Group: "policy", Version: "v1", Kind: "Eviction",
				Verbs: metav1.Verbs{"create"},
			})
		}
	}
	if out == nil {
		return nil
	}
	return &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String(), APIResources: out}
}
