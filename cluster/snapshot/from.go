package snapshot

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/create"
	"github.com/berth-dev/berth/cluster/internal/pki"
	"github.com/berth-dev/berth/cluster/progress"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// CreateFromOptions say which snapshot to make a cluster from.
type CreateFromOptions struct {
	// Snapshot is the snapshot's name.
	Snapshot string
	// Name is the new cluster's name ("": the snapshot's cluster's).
	Name string
	// Image, when set, is every node's image (default: the snapshot's
	// Kubernetes version's node image).
	Image string
	// Create are the create's options; Config and PKI are made here.
	Create create.Options
}

// CreateFrom creates a cluster from snapshot o.Snapshot, alongside the
// cluster it was taken of (which may still run): a cluster with the
// snapshot's layout, Kubernetes version, networking and certificate
// authorities (so that the service-account tokens and CA bundles in its
// objects stay valid), its own network, addresses and API port, into
// which the snapshot is then restored with the node names mapped
// (golden-worker's pods and volumes go to job1-worker). If the restore
// fails the new cluster is deleted, unless o.Create.Retain is set.
func CreateFrom(ctx context.Context, p provider.Provider, s Store, o CreateFromOptions) (*create.Result, *RestoreReport, error) {
	m, err := s.Get(o.Snapshot)
	if err != nil {
		return nil, nil, err
	}
	dir := s.Path(o.Snapshot)
	cfg, err := ClusterConfig(dir, m)
	if err != nil {
		return nil, nil, err
	}
	if o.Name != "" {
		cfg.Name = o.Name
	}
	if o.Image != "" {
		for i := range cfg.Nodes {
			cfg.Nodes[i].Image = o.Image
		}
	}
	cfg.SetDefaults()
	if err := config.ValidateName(cfg.Name); err != nil {
		return nil, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("the configuration of snapshot %q: %w", o.Snapshot, err)
	}
	authorities, err := loadPKI(filepath.Join(dir, pkiFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the PKI of snapshot %q: %w", o.Snapshot, err)
	}
	if got := fingerprint(authorities.CA.CertPEM()); got != m.CAFingerprint {
		return nil, nil, fmt.Errorf("snapshot %q: its pki.tar holds another CA than the one it was taken with (%s, want %s)", o.Snapshot, got, m.CAFingerprint)
	}

	co := o.Create
	co.Config, co.PKI = cfg, authorities
	res, err := create.Create(ctx, p, co)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := mapNodes(ctx, p, m, cfg.Name)
	if err == nil {
		var report *RestoreReport
		report, err = Restore(ctx, p, s, RestoreOptions{Cluster: cfg.Name, Name: o.Snapshot, Nodes: nodes, Wait: co.Wait, Status: co.Status})
		if err == nil {
			res.Took += report.Took
			return res, report, nil
		}
	}
	if co.Retain {
		return nil, nil, fmt.Errorf("restoring snapshot %q into the new cluster %q: %w\n(the cluster was kept because of --retain; remove it with `berth delete cluster --name %s`)", o.Snapshot, cfg.Name, err, cfg.Name)
	}
	delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	status := co.Status
	if status == nil {
		status = progress.Discard{}
	}
	if _, derr := deleteCluster(delCtx, p, cfg.Name, co.KubeconfigPath, status); derr != nil {
		return nil, nil, fmt.Errorf("restoring snapshot %q into the new cluster %q: %w; deleting it failed too: %v", o.Snapshot, cfg.Name, err, derr)
	}
	return nil, nil, fmt.Errorf("restoring snapshot %q into the new cluster %q (deleted again): %w", o.Snapshot, cfg.Name, err)
}

func deleteCluster(ctx context.Context, p provider.Provider, name, kubeconfigPath string, status progress.Reporter) (bool, error) {
	var found bool
	err := progress.Run(status, "deleting cluster "+name, func() error {
		var err error
		found, err = cluster.Delete(ctx, p, name, kubeconfigPath)
		return err
	})
	return found, err
}

// mapNodes maps the snapshot's node names to those of cluster name, made
// from it. berth names a node <cluster>-<role><n>, so a cluster made with
// the snapshot's layout has the same names behind another cluster name;
// Compatible then checks that every mapped node exists with its role.
func mapNodes(ctx context.Context, p provider.Provider, m *Manifest, name string) (NodeMap, error) {
	if name == m.Cluster {
		return nil, nil
	}
	all, err := cluster.Nodes(ctx, p, name)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range all {
		have[n.Name] = true
	}
	nodes := NodeMap{}
	for _, n := range m.Nodes {
		suffix, ok := strings.CutPrefix(n.Name, m.Cluster+"-")
		if !ok || !have[name+"-"+suffix] {
			return nil, fmt.Errorf("node %s of snapshot %q has no counterpart in cluster %q", n.Name, m.Name, name)
		}
		nodes[n.Name] = name + "-" + suffix
	}
	return nodes, nil
}

// ClusterConfig is the configuration of the cluster snapshot m (in dir)
// was taken of: its nodes' roles in berth's naming order, its Kubernetes
// version, and the networking, feature gates, runtime config and node
// labels its nodes were configured with (nodes/<node>.json). Ports,
// mounts and addresses are the host's and are not carried over.
func ClusterConfig(dir string, m *Manifest) (*config.Cluster, error) {
	nodes := append([]Node(nil), m.Nodes...)
	// Control planes first, then workers, each in the order berth
	// numbered them (name length first: worker2 before worker10).
	sort.SliceStable(nodes, func(i, j int) bool {
		if a, b := nodes[i].Role == nodeconfig.RoleControlPlane, nodes[j].Role == nodeconfig.RoleControlPlane; a != b {
			return a
		}
		if len(nodes[i].Name) != len(nodes[j].Name) {
			return len(nodes[i].Name) < len(nodes[j].Name)
		}
		return nodes[i].Name < nodes[j].Name
	})
	cfg := &config.Cluster{Name: m.Cluster, KubernetesVersion: m.KubernetesVersion}
	for i, n := range nodes {
		data, err := os.ReadFile(filepath.Join(dir, nodesDir, n.Name+".json"))
		if err != nil {
			return nil, fmt.Errorf("reading the configuration of node %s: %w", n.Name, err)
		}
		var nc nodeconfig.Node
		if err := json.Unmarshal(data, &nc); err != nil {
			return nil, fmt.Errorf("reading the configuration of node %s: %w", n.Name, err)
		}
		cfg.Nodes = append(cfg.Nodes, config.Node{Role: n.Role, Labels: nc.Labels})
		if i == 0 {
			cfg.Networking = config.Networking{
				PodSubnet:         nc.PodSubnet,
				ServiceSubnet:     nc.ServiceSubnet,
				DNSDomain:         nc.ClusterDomain,
				KubeProxyMode:     nc.KubeProxyMode,
				DisableDefaultCNI: nc.DisableDefaultCNI,
			}
			if nc.LoadBalancerPool == "" {
				off := false
				cfg.Networking.LoadBalancer = &off
			}
			cfg.FeatureGates, cfg.RuntimeConfig = nc.FeatureGates, nc.RuntimeConfig
		}
	}
	return cfg, nil
}

// loadPKI reads the cluster's authorities from a snapshot's pki.tar
// (tar of /etc/kubernetes/pki: entries pki/...).
func loadPKI(archive string) (*pki.Cluster, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", archive, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(h.Name)
		rel, ok := strings.CutPrefix(name, path.Base(nodeconfig.PKIDir)+"/")
		if !ok {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", archive, err)
		}
		files[rel] = data
	}
	return pki.LoadCluster(func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("%s has no %s", archive, name)
	})
}
