package snapshot

import (
	"bytes"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
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

// nodeOwned are the key prefixes of objects that belong to the nodes
// themselves: each kubelet registers its Node, renews its Lease and
// writes its CSINode, and the leader-election Leases of the control
// plane name the running components. A restore into another cluster
// leaves the running cluster's keys under them as they are and does not
// bring the snapshot's: those would name nodes and processes that are
// not there. MetalLB's berth pool is the cluster network's upper half:
// the new cluster's is on its own network.
var nodeOwned = []string{
	"/registry/minions/",
	"/registry/leases/",
	"/registry/csinodes/",
	"/registry/metallb.io/ipaddresspools/metallb-system/berth",
}

func isNodeOwned(key []byte) bool {
	for _, p := range nodeOwned {
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

// Map turns a snapshot's keys (want) into the keys to restore into a
// cluster whose nodes are named by m, given the running cluster's keys
// (have): the snapshot's node-owned keys are dropped and the running
// cluster's kept as they are; Pods are bound to the mapped node
// (spec.nodeName) and PersistentVolumes pinned to a node (local-path's
// node affinity) pin the mapped one. Objects are decoded and encoded
// with the API's own serializer. With an empty m, want is returned as it
// is.
func Map(want, have []*mvccpb.KeyValue, m NodeMap) ([]*mvccpb.KeyValue, error) {
	if len(m) == 0 {
		return want, nil
	}
	out := make([]*mvccpb.KeyValue, 0, len(want))
	for _, kv := range want {
		if isNodeOwned(kv.Key) {
			continue
		}
		mapped, err := mapValue(kv, m)
		if err != nil {
			return nil, err
		}
		out = append(out, mapped)
	}
	for _, kv := range have {
		if isNodeOwned(kv.Key) {
			out = append(out, kv)
		}
	}
	return out, nil
}

// mapValue returns kv with the node names in its object mapped, or kv
// itself when it names none.
func mapValue(kv *mvccpb.KeyValue, m NodeMap) (*mvccpb.KeyValue, error) {
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
