package snapshot

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
)

// NodeMap maps the node names of the cluster a snapshot was taken of to
// the node names of the cluster it is restored into (berth create
// cluster --from-snapshot: node names carry the cluster's name).
type NodeMap map[string]string

// ParseNodeMap reads old=new pairs.
func ParseNodeMap(pairs []string) (NodeMap, error) {
	m := NodeMap{}
	for _, p := range pairs {
		from, to, ok := strings.Cut(p, "=")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("node mapping %q: want OLD=NEW", p)
		}
		m[from] = to
	}
	return m, nil
}

// nodeOwned are the key prefixes of the nodes' own objects, which a
// restore into another cluster takes from the running cluster, not from
// the snapshot (it leaves the running cluster's keys under them as they
// are and does not bring the snapshot's): each kubelet registers its
// Node, renews its Lease and writes its CSINode, and the leader-election
// Leases of the control plane name the running components; the
// snapshot's would name nodes and processes that are not there.
// MetalLB's berth pool is the cluster network's upper half: the new
// cluster's is on its own network.
var nodeOwned = []string{
	"/registry/minions/",
	"/registry/leases/",
	"/registry/csinodes/",
	"/registry/metallb.io/ipaddresspools/metallb-system/berth",
}

// addressPrefixes are the key prefixes of the addresses of Services,
// which every restore takes from the running cluster: EndpointSlices (and
// the Endpoints they mirror) list the addresses pods had when the
// snapshot was taken. A pod the restore brings back runs in a new
// sandbox at a new address, and its old address may belong to another
// pod by then — always in another cluster, where each node's IPAM hands
// its range out again from the start (the new cluster's own add-on pods
// first, the snapshot's pods after the restore), and in the same one
// once a node's IPAM has gone round its range. kube-proxy would send a
// Service's traffic to whichever pod has the address now (seen: an
// app's NodePort answered by CoreDNS's health port) until the
// EndpointSlice controller rewrote the slice. The running cluster's
// slices name only pods it ran until the restore (the kubernetes
// Service's: its API servers); the controller writes the restored
// Services' from their pods once the kubelets report where they run.
var addressPrefixes = []string{
	"/registry/endpointslices/",
	"/registry/services/endpoints/",
}

// otherPrefixes are those taken from the running cluster in a restore
// into another cluster.
var otherPrefixes = append(slices.Clone(nodeOwned), addressPrefixes...)

// fromRunning reports whether key is taken from the running cluster in a
// restore into another cluster (other) or into the same one.
func fromRunning(key []byte, other bool) bool {
	prefixes := addressPrefixes
	if other {
		prefixes = otherPrefixes
	}
	for _, p := range prefixes {
		if bytes.HasPrefix(key, []byte(p)) {
			return true
		}
	}
	return false
}

// Resources whose stored objects name nodes.
const (
	podsPrefix = "/registry/pods/"
	pvsPrefix  = "/registry/persistentvolumes/"
)

// codec reads and writes objects as kube-apiserver stores them in etcd:
// Kubernetes' protobuf envelope ("k8s\x00", then a runtime.Unknown with
// the apiVersion and kind).
var codec = protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)

// Map turns a snapshot's keys (want) into the keys to restore, given
// the running cluster's keys (have), into that cluster or, with a
// non-empty m, into a cluster whose nodes are named by m.
//
// Under the prefixes fromRunning names, the snapshot's keys are dropped
// and the running cluster's kept as they are. Pods the running cluster
// does not run (by UID; into another cluster, none) and that have not
// finished start afresh: their status is a freshly bound pod's (the
// restored one had the addresses and readiness of a sandbox that is
// gone). With m, Pods are bound to the mapped node (spec.nodeName) and
// PersistentVolumes pinned to a node (local-path's node affinity) pin
// the mapped one. Objects are decoded and encoded with the API's own
// serializer; keys Map does not change are returned as they are.
func Map(want, have []*mvccpb.KeyValue, m NodeMap) ([]*mvccpb.KeyValue, error) {
	other := len(m) > 0
	live := podUIDs(have)
	out := make([]*mvccpb.KeyValue, 0, len(want))
	for _, kv := range want {
		if fromRunning(kv.Key, other) {
			continue
		}
		mapped, err := mapValue(kv, m, live)
		if err != nil {
			return nil, err
		}
		out = append(out, mapped)
	}
	for _, kv := range have {
		if fromRunning(kv.Key, other) {
			out = append(out, kv)
		}
	}
	return out, nil
}

// podUIDs are the UIDs of the Pods among kvs, by key. A value that does
// not decode counts as no pod: the snapshot's pod under its key starts
// afresh.
func podUIDs(kvs []*mvccpb.KeyValue) map[string]types.UID {
	uids := map[string]types.UID{}
	for _, kv := range kvs {
		key := string(kv.Key)
		if !strings.HasPrefix(key, podsPrefix) {
			continue
		}
		if obj, _, err := codec.Decode(kv.Value, nil, nil); err == nil {
			if pod, ok := obj.(*corev1.Pod); ok {
				uids[key] = pod.UID
			}
		}
	}
	return uids
}

// mapValue returns kv with the node names in its object mapped and, if
// it is a pod live does not have, its status reset; or kv itself when
// neither changes it.
func mapValue(kv *mvccpb.KeyValue, m NodeMap, live map[string]types.UID) (*mvccpb.KeyValue, error) {
	key := string(kv.Key)
	if !strings.HasPrefix(key, podsPrefix) && !strings.HasPrefix(key, pvsPrefix) {
		return kv, nil
	}
	obj, gvk, err := codec.Decode(kv.Value, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", key, err)
	}
	// The envelope carries the apiVersion and kind, the object does not:
	// set them so that the encoding writes them back.
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	changed := false
	switch o := obj.(type) {
	case *corev1.Pod:
		if to, ok := m[o.Spec.NodeName]; ok {
			o.Spec.NodeName = to
			changed = true
		}
		if o.Spec.NodeName != "" && live[key] != o.UID && o.Status.Phase != corev1.PodSucceeded && o.Status.Phase != corev1.PodFailed {
			o.Status = boundStatus(o.Status)
			changed = true
		}
		// A DaemonSet's pod is pinned to its node by affinity
		// (matchFields metadata.name): the kubelet refuses a pod whose
		// affinity its node does not match.
		if a := o.Spec.Affinity; a != nil && a.NodeAffinity != nil {
			if r := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
				changed = mapTerms(r.NodeSelectorTerms, m) || changed
			}
			for i := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				term := a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution[i].Preference
				changed = mapTerms([]corev1.NodeSelectorTerm{term}, m) || changed
			}
		}
	case *corev1.PersistentVolume:
		if a := o.Spec.NodeAffinity; a != nil && a.Required != nil {
			changed = mapTerms(a.Required.NodeSelectorTerms, m) || changed
		}
		// local-path-provisioner records the node it made the volume on.
		if n, ok := m[o.Annotations[selectedNodeAnnotation]]; ok {
			o.Annotations[selectedNodeAnnotation] = n
			changed = true
		}
	default:
		return kv, nil
	}
	if !changed {
		return kv, nil
	}
	var buf bytes.Buffer
	if err := codec.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", key, err)
	}
	return &mvccpb.KeyValue{Key: kv.Key, Value: buf.Bytes(), CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}, nil
}

// mapTerms maps, in place, the values of node selector terms that are
// old node names, and reports whether any was.
func mapTerms(terms []corev1.NodeSelectorTerm, m NodeMap) bool {
	changed := false
	for i := range terms {
		for _, reqs := range [][]corev1.NodeSelectorRequirement{terms[i].MatchExpressions, terms[i].MatchFields} {
			for j := range reqs {
				for k, v := range reqs[j].Values {
					if to, ok := m[v]; ok {
						reqs[j].Values[k] = to
						changed = true
					}
				}
			}
		}
	}
	return changed
}

// selectedNodeAnnotation is the node a dynamically provisioned volume
// was made for (set on PVCs by the scheduler, copied by some
// provisioners onto the PV).
const selectedNodeAnnotation = "volume.kubernetes.io/selected-node"

// boundStatus is the status of a pod the scheduler has just bound, kept
// from a restored pod's status: the pod is new to its node, which starts
// it afresh. The restored status described the pod in the cluster the
// snapshot was taken of: its addresses (status.podIPs, which the
// EndpointSlice controller publishes while the pod is Ready, and which
// the new node gives to other pods), its node's address, its readiness
// and its containers' states and restart counts.
func boundStatus(old corev1.PodStatus) corev1.PodStatus {
	s := corev1.PodStatus{Phase: corev1.PodPending, QOSClass: old.QOSClass}
	for _, c := range old.Conditions {
		if c.Type == corev1.PodScheduled {
			s.Conditions = append(s.Conditions, c)
		}
	}
	return s
}
