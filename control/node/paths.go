package node

import (
	"path/filepath"

	cc "github.com/berth-dev/berth/control/componentconfig"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Binaries inside the node image.
const (
	ContainerdBin = "/usr/local/bin/containerd"
	CtrBin        = "/usr/local/bin/ctr"
	NFTBin        = "/usr/sbin/nft"
	// ImagesDir holds the OCI archives imported into containerd at boot.
	ImagesDir = "/opt/berth/images"
	// AddonsDir is where the rendered add-on manifests are written.
	AddonsDir = "/etc/berth/addons"
)

// Paths locates the files and directories berth-node itself reads, writes
// and dials. In a node container Root is "/"; tests root it in a
// temporary directory. The command lines and configuration files of the
// components always name the paths inside the node (componentconfig's
// constants): the components only ever run there.
type Paths struct {
	// Root is the directory every path is under; empty means "/".
	Root string
}

func (p Paths) at(path string) string {
	if p.Root == "" {
		return path
	}
	return filepath.Join(p.Root, path)
}

// NodeConfig is the node configuration the CLI wrote.
func (p Paths) NodeConfig() string { return p.at(nodeconfig.Path) }

// AdminKubeconfig is the control plane's cluster-admin kubeconfig.
func (p Paths) AdminKubeconfig() string { return p.at(nodeconfig.AdminKubeconfig) }

// KubeProxyKubeconfig is kube-proxy's kubeconfig, which the node agent
// shares.
func (p Paths) KubeProxyKubeconfig() string { return p.at(nodeconfig.KubeProxyKubeconfig) }

// ContainerdConfig is containerd's configuration file.
func (p Paths) ContainerdConfig() string { return p.at(cc.ContainerdConfig) }

// ContainerdSocket is containerd's API socket.
func (p Paths) ContainerdSocket() string { return p.at(cc.ContainerdSocket) }

// KubeletConfig is the kubelet's configuration file.
func (p Paths) KubeletConfig() string { return p.at(cc.KubeletConfigPath) }

// KubeProxyConfig is kube-proxy's configuration file.
func (p Paths) KubeProxyConfig() string { return p.at(cc.KubeProxyConfigPath) }

// PodResolvConf is the resolv.conf the kubelet gives pods with dnsPolicy
// Default.
func (p Paths) PodResolvConf() string { return p.at(cc.ResolvConf) }

// CNIConfDir holds the pod network's CNI configuration.
func (p Paths) CNIConfDir() string { return p.at(cc.CNIConfDir) }

// ImagesDir holds the OCI archives imported into containerd at boot.
func (p Paths) ImagesDir() string { return p.at(ImagesDir) }

// AddonsDir is where the rendered add-on manifests are written.
func (p Paths) AddonsDir() string { return p.at(AddonsDir) }

// HostResolvConf is the node container's own resolv.conf (Docker's).
func (p Paths) HostResolvConf() string { return p.at("/etc/resolv.conf") }

// RouteTable is the kernel's IPv4 routing table.
func (p Paths) RouteTable() string { return p.at("/proc/net/route") }
