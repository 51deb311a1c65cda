// Package versions pins every component a node image is built from. It
// is the one place versions live: the node image build, the node binary,
// the CLI and the scripts under hack/ (through `berth version -o json`)
// all read them from here.
//
// It is its own module with no dependencies, so the CLI's module and the
// node binary's module (which builds Kubernetes) both import it without
// pulling in each other's dependency sets.
package versions

import (
	"fmt"
	"strings"
)

// Release is one supported Kubernetes version and what a node of that
// version is built with. Adding the next minor is one row in Releases
// (plus whatever the compiler reports in the control module).
type Release struct {
	// Kubernetes is the k8s.io/kubernetes module version (vX.Y.Z); every
	// staging module is replaced by v0.Y.Z.
	Kubernetes string `json:"kubernetes"`
	// Etcd is the go.etcd.io/etcd/server/v3 version that Kubernetes
	// version's go.mod requires; berth-node embeds it.
	Etcd string `json:"etcd"`
	// CoreDNS is the cluster DNS built into the node image.
	CoreDNS string `json:"coredns"`
	// Pause is the sandbox image tag that version's own tests expect.
	Pause string `json:"pause"`
}

// Releases lists the supported Kubernetes versions, newest first. The
// first is the default.
var Releases = []Release{
	{Kubernetes: "v1.37.2", Etcd: "v3.7.0", CoreDNS: "v1.15.0", Pause: "3.10.2"},
	{Kubernetes: "v1.36.3", Etcd: "v3.6.8", CoreDNS: "v1.15.0", Pause: "3.10.2"},
	{Kubernetes: "v1.35.4", Etcd: "v3.6.5", CoreDNS: "v1.15.0", Pause: "3.10.1"},
}

// Default is the release a cluster gets when none is asked for.
func Default() Release { return Releases[0] }

// Resolve finds the release for a version a user gave: a minor ("v1.36",
// "1.36") selects the patch berth pins for it; a full version ("v1.36.3")
// must be a pinned one. An empty string selects the default.
func Resolve(v string) (Release, error) {
	if v == "" {
		return Default(), nil
	}
	want := "v" + strings.TrimPrefix(strings.TrimSpace(v), "v")
	for _, r := range Releases {
		if r.Kubernetes == want || r.Minor() == want {
			return r, nil
		}
	}
	return Release{}, fmt.Errorf("Kubernetes %s is not supported by this berth; supported: %s (a minor such as %s selects its pinned patch)", v, strings.Join(Supported(), ", "), Default().Minor())
}

// Supported lists the supported versions, newest first.
func Supported() []string {
	var out []string
	for _, r := range Releases {
		out = append(out, r.Kubernetes)
	}
	return out
}

// Minor is the release's minor version, as "v1.37".
func (r Release) Minor() string {
	parts := strings.SplitN(r.Kubernetes, ".", 3)
	if len(parts) < 2 {
		return r.Kubernetes
	}
	return parts[0] + "." + parts[1]
}

// MajorMinor returns "1" and "37" for v1.37.2 (the version's gitMajor and
// gitMinor, stamped into the binaries).
func (r Release) MajorMinor() (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(r.Kubernetes, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

// StagingVersion is the version every k8s.io staging module is replaced
// with: v0.37.2 for v1.37.2.
func (r Release) StagingVersion() string {
	return "v0." + strings.TrimPrefix(strings.TrimPrefix(r.Kubernetes, "v"), "1.")
}

// NodeImage is the local reference of the release's node image.
func (r Release) NodeImage() string { return NodeImageRepo + ":" + r.Kubernetes }

// PauseImage is the sandbox image, under the upstream name so the
// conformance suite finds it.
func (r Release) PauseImage() string { return "registry.k8s.io/pause:" + r.Pause }

// CoreDNSImage is the cluster DNS image, under its upstream name.
func (r Release) CoreDNSImage() string { return "registry.k8s.io/coredns/coredns:" + r.CoreDNS }

// NodeImageRepo is the repository local node images are tagged in.
const NodeImageRepo = "berth/node"

// Components compiled into every node image from the Go module proxy,
// whatever the Kubernetes version.
const (
	Containerd = "v2.4.2"
	Runc       = "v1.5.2"
	CNIPlugins = "v1.9.1"
	LocalPath  = "v0.0.30"
	MetalLB    = "v0.16.2"
	// Registry is the CNCF registry (distribution) berth runs as the
	// machine's local registry (not part of the node image).
	Registry    = "v3.1.2"
	DebianSuite = "bookworm"
)

// Images the cluster runs from the node image (never pulled). The names
// are the upstream ones, so manifests and the conformance suite find them.
const (
	StorageImage = "docker.io/rancher/local-path-provisioner:" + LocalPath
	// HelperImage runs local-path-provisioner's volume setup scripts:
	// Debian's busybox-static.
	HelperImage = "docker.io/library/busybox:1.35-berth"
	// MetalLB's controller and speaker, built from source.
	MetalLBControllerImage = "quay.io/metallb/controller:" + MetalLB
	MetalLBSpeakerImage    = "quay.io/metallb/speaker:" + MetalLB
)
