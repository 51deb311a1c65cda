package config

import (
	"fmt"
	"strings"
)

// kindCluster mirrors kind's v1alpha4 Cluster, so that every field kind
// accepts is accepted here (and nothing else is).
type kindCluster struct {
	Kind                            string            `yaml:"kind"`
	APIVersion                      string            `yaml:"apiVersion"`
	Name                            string            `yaml:"name"`
	Nodes                           []kindNode        `yaml:"nodes"`
	Networking                      kindNetworking    `yaml:"networking"`
	FeatureGates                    map[string]bool   `yaml:"featureGates"`
	RuntimeConfig                   map[string]string `yaml:"runtimeConfig"`
	KubeadmConfigPatches            []string          `yaml:"kubeadmConfigPatches"`
	KubeadmConfigPatchesJSON6902    []any             `yaml:"kubeadmConfigPatchesJSON6902"`
	ContainerdConfigPatches         []string          `yaml:"containerdConfigPatches"`
	ContainerdConfigPatchesJSON6902 []string          `yaml:"containerdConfigPatchesJSON6902"`
}

type kindNode struct {
	Role                         string            `yaml:"role"`
	Image                        string            `yaml:"image"`
	Labels                       map[string]string `yaml:"labels"`
	ExtraMounts                  []kindMount       `yaml:"extraMounts"`
	ExtraPortMappings            []PortMapping     `yaml:"extraPortMappings"`
	KubeadmConfigPatches         []string          `yaml:"kubeadmConfigPatches"`
	KubeadmConfigPatchesJSON6902 []any             `yaml:"kubeadmConfigPatchesJSON6902"`
}

type kindMount struct {
	HostPath       string `yaml:"hostPath"`
	ContainerPath  string `yaml:"containerPath"`
	ReadOnly       bool   `yaml:"readOnly"`
	SelinuxRelabel bool   `yaml:"selinuxRelabel"`
	Propagation    string `yaml:"propagation"`
}

type kindNetworking struct {
	IPFamily          string   `yaml:"ipFamily"`
	APIServerPort     int      `yaml:"apiServerPort"`
	APIServerAddress  string   `yaml:"apiServerAddress"`
	PodSubnet         string   `yaml:"podSubnet"`
	ServiceSubnet     string   `yaml:"serviceSubnet"`
	DisableDefaultCNI bool     `yaml:"disableDefaultCNI"`
	KubeProxyMode     string   `yaml:"kubeProxyMode"`
	DNSSearch         []string `yaml:"dnsSearch"`
}

// translate turns a kind configuration into berth's, with one warning per
// setting berth does not act on.
func (k *kindCluster) translate() (*Cluster, []string) {
	var warnings []string
	warn := func(format string, a ...any) { warnings = append(warnings, fmt.Sprintf(format, a...)) }
	c := &Cluster{
		APIVersion:    APIVersion,
		Kind:          Kind,
		Name:          k.Name,
		FeatureGates:  k.FeatureGates,
		RuntimeConfig: k.RuntimeConfig,
	}
	if len(k.KubeadmConfigPatches) > 0 || len(k.KubeadmConfigPatchesJSON6902) > 0 {
		warn("kubeadmConfigPatches: ignored, berth does not run kubeadm (use featureGates and runtimeConfig)")
	}
	if len(k.ContainerdConfigPatches) > 0 || len(k.ContainerdConfigPatchesJSON6902) > 0 {
		warn("containerdConfigPatches: ignored, berth's containerd configuration is fixed (load images with `berth load image`)")
	}
	for i, n := range k.Nodes {
		node := Node{Role: n.Role, Labels: n.Labels, ExtraPortMappings: n.ExtraPortMappings}
		if n.Image != "" {
			if strings.HasPrefix(n.Image, "kindest/node") {
				warn("nodes[%d].image: %s is kind's node image; berth uses its own", i, n.Image)
			} else {
				node.Image = n.Image
			}
		}
		if len(n.KubeadmConfigPatches) > 0 || len(n.KubeadmConfigPatchesJSON6902) > 0 {
			warn("nodes[%d].kubeadmConfigPatches: ignored, berth does not run kubeadm", i)
		}
		for j, m := range n.ExtraMounts {
			if m.SelinuxRelabel {
				warn("nodes[%d].extraMounts[%d].selinuxRelabel: ignored", i, j)
			}
			node.ExtraMounts = append(node.ExtraMounts, Mount{HostPath: m.HostPath, ContainerPath: m.ContainerPath, ReadOnly: m.ReadOnly, Propagation: m.Propagation})
		}
		c.Nodes = append(c.Nodes, node)
	}
	nw := k.Networking
	if nw.IPFamily != "" && nw.IPFamily != "ipv4" {
		warn("networking.ipFamily: %q is not supported yet, the cluster is IPv4", nw.IPFamily)
	}
	if len(nw.DNSSearch) > 0 {
		warn("networking.dnsSearch: ignored")
	}
	mode := nw.KubeProxyMode
	if mode == "ipvs" {
		warn("networking.kubeProxyMode: ipvs is not supported, using nftables")
		mode = "nftables"
	}
	c.Networking = Networking{
		PodSubnet:         nw.PodSubnet,
		ServiceSubnet:     nw.ServiceSubnet,
		APIServerAddress:  nw.APIServerAddress,
		APIServerPort:     nw.APIServerPort,
		KubeProxyMode:     mode,
		DisableDefaultCNI: nw.DisableDefaultCNI,
	}
	return c, warnings
}
