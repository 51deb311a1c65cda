// Package registry runs the machine's local container registry: one
// container of the CNCF registry (distribution), built from source by
// nodeimage, published on 127.0.0.1:<port> for the host (`docker push
// localhost:5001/app:dev`) and attached to the network of every cluster
// created with --registry, where the nodes' containerd pulls
// localhost:<port>/... from it by its name (certs.d hosts.toml files
// written into each node at plan time). It belongs to no cluster: deleting
// a cluster only disconnects it, and its images stay in a volume until
// `berth delete registry`.
package registry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/cluster/config"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage"
)

const (
	// Name is the registry container's name, and its DNS name on every
	// cluster network it is attached to.
	Name = "berth-registry"
	// Volume holds its blobs and manifests.
	Volume = "berth-registry-data"
	// Label marks the container and the volume; its value is the host
	// port. They carry no cluster label: the registry outlives clusters.
	Label = "berth.dev/registry"
	// ContainerPort is the port it listens on inside the cluster network.
	ContainerPort = nodeimage.RegistryContainerPort
	// CertsDir is where containerd (config_path) reads per-registry
	// hosts.toml files, at every pull.
	CertsDir = "/etc/containerd/certs.d"
)

// InNetworkAddress is host:port of the registry on a cluster network:
// what containerd in a node actually dials.
func InNetworkAddress() string { return net.JoinHostPort(Name, strconv.Itoa(ContainerPort)) }

// HostAddress is the registry's name on the host and in pod specs,
// localhost:<port>.
func HostAddress(port int) string { return net.JoinHostPort("localhost", strconv.Itoa(port)) }

// HostsTOML is containerd's hosts.toml making the registry host it is
// written for (certs.d/<host>/hosts.toml) resolve and pull from endpoint,
// a plain-HTTP URL. server is set too, so containerd never falls back
// to the host's own name, which means something else inside a node.
func HostsTOML(endpoint string) []byte {
	return []byte(fmt.Sprintf(`# Written by berth: the local registry (berth get registry).
server = %q

[host.%q]
  capabilities = ["pull", "resolve"]
`, endpoint, endpoint))
}

// HostsFiles are the files every node of a cluster using the registry on
// port gets: localhost:<port> (the name the host pushes to, and pod specs
// use) and berth-registry:5000 (its name on the cluster network) both
// lead to http://berth-registry:5000.
func HostsFiles(port int) []provider.File {
	endpoint := "http://" + InNetworkAddress()
	var files []provider.File
	for _, host := range []string{HostAddress(port), InNetworkAddress()} {
		files = append(files, provider.File{Path: CertsDir + "/" + host + "/hosts.toml", Mode: 0o644, Data: HostsTOML(endpoint)})
	}
	return files
}

// UseIn makes a node use the registry on port: containerd's certs.d
// files (HostsFiles), and the label by which a registry created later
// (after `berth delete registry`) finds the clusters to attach to.
func UseIn(spec *provider.NodeSpec, port int) {
	spec.Files = append(spec.Files, HostsFiles(port)...)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[Label] = strconv.Itoa(port)
}

// Spec is the registry container for port.
func Spec(port int) provider.RegistrySpec {
	return provider.RegistrySpec{
		Name:          Name,
		Image:         nodeimage.RegistryImage,
		Volume:        Volume,
		DataDir:       nodeimage.RegistryDataDir,
		ListenAddress: config.RegistryListenAddress,
		HostPort:      port,
		ContainerPort: ContainerPort,
		Labels:        map[string]string{Label: strconv.Itoa(port)},
	}
}

// BuildImage makes sure the registry image exists (nodeimage.BuildRegistry
// behind the CLI's progress display).
type BuildImage func(ctx context.Context) error

// Ensure makes the registry run on port: an existing one is started if
// it is stopped (one on another port is refused: there is one registry
// per machine), a missing one is created — its image built first when
// missing — and waited for until it answers.
func Ensure(ctx context.Context, p provider.Provider, port int, build BuildImage) (*provider.Registry, error) {
	r, err := p.GetRegistry(ctx, Name)
	if err != nil {
		return nil, err
	}
	if r != nil {
		if r.Labels[Label] == "" {
			return nil, fmt.Errorf("a container named %s exists, but berth did not make it: remove or rename it (docker rm -f %s), then create the cluster again", Name, Name)
		}
		if r.HostPort != port {
			return nil, fmt.Errorf("the local registry %s is published on %s, not on port %d; it is shared by every cluster on this machine: use registry: {port: %d} in the cluster file, or remove it first with `berth delete registry`", Name, HostAddress(r.HostPort), port, r.HostPort)
		}
		if r.State == "running" {
			return r, nil
		}
		if err := p.StartRegistry(ctx, Name); err != nil {
			return nil, err
		}
		r.State = "running"
		return r, waitReady(ctx, port, 30*time.Second)
	}
	if err := portFree(port); err != nil {
		return nil, err
	}
	if build != nil {
		if err := build(ctx); err != nil {
			return nil, fmt.Errorf("building the registry image: %w", err)
		}
	}
	if err := p.CreateRegistry(ctx, Spec(port)); err != nil {
		if strings.Contains(err.Error(), "already allocated") || strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("%w\n(port %d on %s is taken: choose another with registry: {port: N} in the cluster file)", err, port, config.RegistryListenAddress)
		}
		return nil, err
	}
	if err := waitReady(ctx, port, 30*time.Second); err != nil {
		return nil, err
	}
	if err := reconnect(ctx, p, port); err != nil {
		return nil, err
	}
	return p.GetRegistry(ctx, Name)
}

// reconnect attaches a new registry to the networks of the clusters
// whose nodes use it (a registry deleted and created again serves them
// again).
func reconnect(ctx context.Context, p provider.Provider, port int) error {
	nodes, err := p.ListNodes(ctx, "")
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, n := range nodes {
		if n.Cluster == "" || done[n.Cluster] || n.Labels[Label] != strconv.Itoa(port) {
			continue
		}
		done[n.Cluster] = true
		if err := Connect(ctx, p, clusterNetworkPrefix+n.Cluster); err != nil {
			return fmt.Errorf("attaching the registry to cluster %s: %w", n.Cluster, err)
		}
	}
	return nil
}

// portFree refuses a port another program listens on, before anything
// is made.
func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(config.RegistryListenAddress, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on %s is taken (%v): choose another for the registry with registry: {port: N} in the cluster file", port, config.RegistryListenAddress, err)
	}
	return l.Close()
}

// waitReady polls the registry's API base (/v2/) on the host until it
// answers.
func waitReady(ctx context.Context, port int, within time.Duration) error {
	url := fmt.Sprintf("http://%s/v2/", net.JoinHostPort(config.RegistryListenAddress, strconv.Itoa(port)))
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the local registry did not answer on %s within %s (%v): see `docker logs %s`", url, within, last, Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Connect attaches the registry to a cluster's network.
func Connect(ctx context.Context, p provider.Provider, network string) error {
	return p.ConnectRegistry(ctx, Name, network)
}

// Disconnect detaches the registry from a cluster's network.
func Disconnect(ctx context.Context, p provider.Provider, network string) error {
	return p.DisconnectRegistry(ctx, Name, network)
}

// Info describes the registry for `berth get registry`.
type Info struct {
	Name string `json:"name"`
	// Address is where the host pushes and pod specs pull
	// (localhost:<port>).
	Address string `json:"address"`
	// InNetwork is its address on the cluster networks.
	InNetwork string `json:"inNetworkAddress"`
	State     string `json:"state"`
	Image     string `json:"image"`
	Volume    string `json:"volume"`
	// Clusters are the clusters whose network it is attached to.
	Clusters []string `json:"clusters"`
	// Size is the bytes its volume uses (-1: unknown, or not asked).
	Size int64 `json:"sizeBytes"`
}

// clusterNetworkPrefix starts the name of every cluster's network
// (provider/docker.NetworkName).
const clusterNetworkPrefix = "berth-"

// Get describes the registry, or returns nil when there is none. size
// asks the engine for its volume's size (it walks every volume).
func Get(ctx context.Context, p provider.Provider, size bool) (*Info, error) {
	r, err := p.GetRegistry(ctx, Name)
	if err != nil || r == nil || r.Labels[Label] == "" {
		return nil, err
	}
	info := &Info{
		Name:      r.Name,
		Address:   HostAddress(r.HostPort),
		InNetwork: InNetworkAddress(),
		State:     r.State,
		Image:     r.Image,
		Volume:    r.Volume,
		Clusters:  []string{},
		Size:      -1,
	}
	for _, n := range r.Networks {
		if c, ok := strings.CutPrefix(n, clusterNetworkPrefix); ok {
			info.Clusters = append(info.Clusters, c)
		}
	}
	if size && r.Volume != "" {
		if info.Size, err = p.VolumeSize(ctx, r.Volume); err != nil {
			info.Size = -1
		}
	}
	return info, nil
}

// Delete detaches the registry from every network and removes it and
// its volume, with every image in it. found is false when there was no
// registry (a volume left by an interrupted delete is removed all the
// same).
func Delete(ctx context.Context, p provider.Provider) (found bool, err error) {
	r, err := p.GetRegistry(ctx, Name)
	if err != nil {
		return false, err
	}
	if r == nil {
		return false, p.DeleteRegistry(ctx, "", Volume)
	}
	if r.Labels[Label] == "" {
		return true, fmt.Errorf("the container %s was not made by berth: not removing it", Name)
	}
	vol := r.Volume
	if vol == "" {
		vol = Volume
	}
	return true, p.DeleteRegistry(ctx, Name, vol)
}
