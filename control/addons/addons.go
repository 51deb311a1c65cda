// Package addons holds the cluster add-ons the first control-plane node
// applies at boot (CoreDNS), rendered for the node's configuration.
package addons

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"text/template"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

//go:embed manifests/*.yaml
var manifests embed.FS

type values struct {
	ClusterDomain string
	DNSServiceIP  string
	CoreDNSImage  string
	StorageImage  string
	HelperImage   string
	// LoadBalancerPool is MetalLB's address range; empty leaves MetalLB
	// (its manifests render empty) out.
	LoadBalancerPool       string
	MetalLBControllerImage string
	MetalLBSpeakerImage    string
}

// Render returns every add-on manifest for n, keyed by file name. The
// images are those of r, the node's release: they are built into the node
// image and imported into containerd at boot; nothing is pulled.
func Render(n *nodeconfig.Node, r versions.Release) (map[string][]byte, error) {
	v := values{
		ClusterDomain: n.ClusterDomain,
		DNSServiceIP:  n.DNSServiceIP,
		CoreDNSImage:  r.CoreDNSImage(),
		StorageImage:  versions.StorageImage,
		HelperImage:   versions.HelperImage,

		LoadBalancerPool:       n.LoadBalancerPool,
		MetalLBControllerImage: versions.MetalLBControllerImage,
		MetalLBSpeakerImage:    versions.MetalLBSpeakerImage,
	}
	names, err := fs.Glob(manifests, "manifests/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := map[string][]byte{}
	for _, name := range names {
		raw, err := manifests.ReadFile(name)
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(name).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parsing add-on %s: %w", name, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, v); err != nil {
			return nil, fmt.Errorf("rendering add-on %s: %w", name, err)
		}
		// An add-on switched off renders to nothing.
		if len(bytes.TrimSpace(buf.Bytes())) == 0 {
			continue
		}
		out[name[len("manifests/"):]] = buf.Bytes()
	}
	return out, nil
}
