package addons

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

func TestRenderCoreDNS(t *testing.T) {
	out, err := Render(&nodeconfig.Node{ClusterDomain: "cluster.local", DNSServiceIP: "10.96.0.10"})
	if err != nil {
		t.Fatal(err)
	}
	coredns := string(out["coredns.yaml"])
	for _, want := range []string{"clusterIP: 10.96.0.10", "kubernetes cluster.local in-addr.arpa", "image: " + versions.Default().CoreDNSImage()} {
		if !strings.Contains(coredns, want) {
			t.Errorf("coredns.yaml lacks %q", want)
		}
	}
	if strings.Contains(coredns, "{{") {
		t.Error("coredns.yaml has unrendered template actions")
	}
}
