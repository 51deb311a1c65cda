// Package cluster holds the operations on existing clusters: listing,
// reading the kubeconfig, describing nodes and deleting. Creating lives in
// cluster/create; the container engine is behind cluster/provider.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cluster/sriov"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// ErrNotFound is returned for a cluster that does not exist.
var ErrNotFound = errors.New("cluster not found")

// List returns the names of every berth cluster, sorted, half-made ones
// (only a network or volumes left by a killed create) included.
func List(ctx context.Context, p provider.Provider) ([]string, error) {
	states, err := p.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range states {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names, nil
}

// Summary describes one cluster from its containers alone (no API call).
type Summary struct {
	Name string `json:"name"`
	// Nodes counts Kubernetes nodes; Running those whose container runs.
	Nodes   int `json:"nodes"`
	Running int `json:"running"`
	// KubernetesVersion is what the nodes were created with ("" when the
	// containers predate the label).
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Incomplete: its create has not finished — it is running, or it
	// was killed (SIGKILL, a crash) before it could undo what it made.
	Incomplete bool `json:"incomplete,omitempty"`
}

// IncompleteStatus is how a half-made cluster is shown.
func IncompleteStatus(name string) string {
	return fmt.Sprintf("incomplete: its create did not finish (still running, or killed) — delete it with `berth delete cluster --name %s`", name)
}

// Summaries describes every berth cluster, sorted by name.
func Summaries(ctx context.Context, p provider.Provider) ([]Summary, error) {
	nodes, err := p.ListNodes(ctx, "")
	if err != nil {
		return nil, err
	}
	byName := map[string]*Summary{}
	var out []*Summary
	for _, n := range nodes {
		if n.Cluster == "" {
			continue
		}
		s := byName[n.Cluster]
		if s == nil {
			s = &Summary{Name: n.Cluster}
			byName[n.Cluster] = s
			out = append(out, s)
		}
		if n.Role == nodeconfig.RoleLoadBalancer {
			continue
		}
		s.Nodes++
		if n.State == "running" {
			s.Running++
		}
		if v := n.Labels[nodeconfig.LabelKubernetesVersion]; v != "" {
			s.KubernetesVersion = v
		}
	}
	states, err := p.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		s := byName[st.Name]
		if s == nil {
			s = &Summary{Name: st.Name}
			byName[st.Name] = s
			out = append(out, s)
		}
		s.Incomplete = !st.Finished()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	res := make([]Summary, len(out))
	for i, s := range out {
		res[i] = *s
	}
	return res, nil
}

// KubernetesNodes returns the names of the containers that are Kubernetes
// nodes (not the API load balancer).
func KubernetesNodes(nodes []provider.Node) []string {
	var names []string
	for _, n := range nodes {
		if n.Role != nodeconfig.RoleLoadBalancer {
			names = append(names, n.Name)
		}
	}
	return names
}

// Nodes returns a cluster's node containers, or ErrNotFound.
func Nodes(ctx context.Context, p provider.Provider, name string) ([]provider.Node, error) {
	nodes, err := p.ListNodes(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no cluster named %q (see `berth get clusters`)", ErrNotFound, name)
	}
	return nodes, nil
}

// apiServerNode returns the node publishing the API server on the host.
func apiServerNode(nodes []provider.Node) (provider.Node, error) {
	for _, n := range nodes {
		if n.Labels[nodeconfig.LabelAPIServerPort] != "" {
			return n, nil
		}
	}
	return provider.Node{}, fmt.Errorf("no node of the cluster publishes the API server")
}

// Kubeconfig returns the cluster's admin kubeconfig as seen from the
// host, with context berth-<name>.
func Kubeconfig(ctx context.Context, p provider.Provider, name string) (*clientcmdapi.Config, error) {
	nodes, err := Nodes(ctx, p, name)
	if err != nil {
		return nil, err
	}
	api, err := apiServerNode(nodes)
	if err != nil {
		return nil, err
	}
	var cp *provider.Node
	for i := range nodes {
		if nodes[i].Role == nodeconfig.RoleControlPlane && (cp == nil || nodes[i].State == "running" && cp.State != "running") {
			cp = &nodes[i]
		}
	}
	if cp == nil {
		return nil, fmt.Errorf("cluster %q has no control-plane node", name)
	}
	data, err := p.ReadFile(ctx, cp.Name, nodeconfig.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	in, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("parsing the admin kubeconfig of %s: %w", cp.Name, err)
	}
	ctxName := kubeconfig.ContextName(name)
	var cl *clientcmdapi.Cluster
	var user *clientcmdapi.AuthInfo
	for _, c := range in.Clusters {
		cl = c
	}
	for _, u := range in.AuthInfos {
		user = u
	}
	if cl == nil || user == nil {
		return nil, fmt.Errorf("the admin kubeconfig of %s is incomplete", cp.Name)
	}
	server := "https://" + net.JoinHostPort(api.Labels[nodeconfig.LabelAPIServerAddr], api.Labels[nodeconfig.LabelAPIServerPort])
	return kubeconfig.Build(ctxName, server, cl.CertificateAuthorityData, user.ClientCertificateData, user.ClientKeyData), nil
}

// Client returns a clientset for the cluster.
func Client(ctx context.Context, p provider.Provider, name string) (*kubernetes.Clientset, error) {
	kc, err := Kubeconfig(ctx, p, name)
	if err != nil {
		return nil, err
	}
	rc, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// Delete removes every container, network and volume of the cluster and
// its kubeconfig context. Deleting a cluster that does not exist is not
// an error (scripts may delete unconditionally); found tells.
func Delete(ctx context.Context, p provider.Provider, name, kubeconfigPath string) (found bool, err error) {
	c, n, v, err := p.ClusterObjects(ctx, name)
	if err != nil {
		return false, err
	}
	found = c+n+v > 0
	var vfErr error
	if found {
		// SR-IOV VFs go back to the host under their own names before
		// their nodes go (a veth stand-in would die with the node).
		if nodes, err := p.ListNodes(ctx, name); err == nil {
			vfErr = sriov.ReclaimNodes(ctx, p, nodes)
		}
		if err := p.DeleteCluster(ctx, name); err != nil {
			return found, fmt.Errorf("deleting cluster %q: %w", name, err)
		}
	}
	defer func() {
		if err == nil && vfErr != nil {
			err = fmt.Errorf("cluster %q deleted, but not every SR-IOV VF came back to the host: %w", name, vfErr)
		}
	}()
	if kubeconfigPath != "" {
		if err := kubeconfig.Remove(ctx, kubeconfigPath, kubeconfig.ContextName(name)); err != nil {
			return found, fmt.Errorf("removing context %s from %s: %w", kubeconfig.ContextName(name), kubeconfigPath, err)
		}
	}
	return found, nil
}
