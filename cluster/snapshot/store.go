// Package snapshot saves a running cluster's state — etcd, every node's
// local-path volumes, the images loaded into each node, the PKI and the
// node configurations — under berth's state directory, and restores a
// running cluster to it in seconds.
//
// A snapshot is a directory:
//
//	manifest.json        what was saved (Manifest)
//	etcd.db              etcd's snapshot (readable by etcdutl too)
//	pki.tar              the cluster's PKI (/etc/kubernetes/pki)
//	nodes/<node>.json    each node's configuration (/etc/berth/node.json)
//	volumes/<node>.tar   each node's /var/local-path-provisioner
//
// Files are 0600 and directories 0700: a snapshot holds the cluster's
// keys and every Secret.
package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
)

// FormatVersion is the layout of a snapshot directory.
const FormatVersion = 1

// Manifest describes a snapshot.
type Manifest struct {
	FormatVersion     int       `json:"formatVersion"`
	Name              string    `json:"name"`
	Cluster           string    `json:"cluster"`
	KubernetesVersion string    `json:"kubernetesVersion"`
	Created           time.Time `json:"created"`
	// CAFingerprint is the SHA-256 of the cluster CA certificate: a
	// cluster deleted and created again under the same name has another
	// CA, and the snapshot's Secrets and tokens would not fit it.
	CAFingerprint string `json:"caFingerprint"`
	Nodes         []Node `json:"nodes"`
	// Sizes in bytes.
	EtcdBytes    int64 `json:"etcdBytes"`
	VolumesBytes int64 `json:"volumesBytes"`
}

// Node is one node of the saved cluster.
type Node struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Images are the images loaded into the node's containerd beyond
	// those the node image brings (berth load image), by name.
	Images []Image `json:"images,omitempty"`
}

// Image is an image in a node's containerd.
type Image struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// Files of a snapshot directory.
const (
	manifestFile = "manifest.json"
	etcdFile     = "etcd.db"
	pkiFile      = "pki.tar"
	nodesDir     = "nodes"
	volumesDir   = "volumes"
)

// Store is the directory holding every snapshot.
type Store struct {
	Dir string
}

// DefaultStore is $BERTH_SNAPSHOT_DIR, else berth/snapshots under
// $XDG_STATE_HOME (~/.local/state): state a user made and wants kept, not
// a cache that may be wiped.
func DefaultStore() (Store, error) {
	if dir := os.Getenv("BERTH_SNAPSHOT_DIR"); dir != "" {
		return Store{Dir: dir}, nil
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return Store{}, fmt.Errorf("finding berth's state directory: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return Store{Dir: filepath.Join(base, "berth", "snapshots")}, nil
}

var validName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// ValidateName checks a snapshot name: lower-case letters, digits, '.',
// '_' and '-', starting and ending with a letter or digit.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid snapshot name %q: use lower-case letters, digits, '.', '_' and '-' (at most 64), starting and ending with a letter or digit", name)
	}
	return nil
}

// ErrNotFound is returned for a snapshot that does not exist.
var ErrNotFound = errors.New("snapshot not found")

// Path is the directory of snapshot name.
func (s Store) Path(name string) string { return filepath.Join(s.Dir, name) }

// Get reads the manifest of snapshot name.
func (s Store) Get(name string) (*Manifest, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(s.Path(name), manifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no snapshot named %q (see `berth snapshot list`)", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading snapshot %q: %w", name, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading the manifest of snapshot %q: %w", name, err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("snapshot %q has format %d; this berth reads format %d", name, m.FormatVersion, FormatVersion)
	}
	return &m, nil
}

// List returns every snapshot, oldest first. Directories being written
// (their names start with '.') are not snapshots yet.
func (s Store) List() ([]Manifest, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing snapshots in %s: %w", s.Dir, err)
	}
	var out []Manifest
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		m, err := s.Get(e.Name())
		if err != nil {
			continue
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Delete removes snapshot name.
func (s Store) Delete(name string) error {
	if _, err := s.Get(name); err != nil {
		return err
	}
	if err := os.RemoveAll(s.Path(name)); err != nil {
		return fmt.Errorf("deleting snapshot %q: %w", name, err)
	}
	return nil
}

// begin makes a hidden directory to write a snapshot into; commit moves
// it into place, so a snapshot is never seen half written.
func (s Store) begin(name string) (string, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", s.Dir, err)
	}
	dir, err := os.MkdirTemp(s.Dir, "."+name+"-")
	if err != nil {
		return "", err
	}
	for _, sub := range []string{nodesDir, volumesDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// commit writes the manifest into dir and moves dir to name, replacing
// an older snapshot of that name if replace is set.
func (s Store) commit(dir string, m *Manifest, replace bool) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, manifestFile), append(data, '\n'), 0o600); err != nil {
		return err
	}
	dst := s.Path(m.Name)
	if _, err := os.Stat(dst); err == nil {
		if !replace {
			return fmt.Errorf("snapshot %q exists (delete it first, or save under another name)", m.Name)
		}
		old := dst + ".old"
		_ = os.RemoveAll(old)
		if err := os.Rename(dst, old); err != nil {
			return err
		}
		defer os.RemoveAll(old)
	}
	return os.Rename(dir, dst)
}

// NodeMap maps the node names of the cluster a snapshot was taken of to
// those of another cluster with the same layout.
type NodeMap map[string]string

// name is the node old is called in the cluster restored into.
func (m NodeMap) name(old string) string {
	if n, ok := m[old]; ok {
		return n
	}
	return old
}

// args are the OLD=NEW arguments of berth-node snapshot restore.
func (m NodeMap) args() []string {
	var out []string
	for old, n := range m {
		out = append(out, old+"="+n)
	}
	sort.Strings(out)
	return out
}

// Compatible reports why snapshot m cannot be restored into a cluster
// running version with nodes (name and role) and CA fingerprint ca, or
// nil if it can. With a node map the snapshot's nodes are compared under
// their mapped names: a cluster made from the snapshot has its layout
// (roles, in order) under other names.
func Compatible(m *Manifest, version string, nodes []Node, ca string, nodeMap NodeMap) error {
	if m.KubernetesVersion != version {
		return fmt.Errorf("snapshot %q was taken on Kubernetes %s; cluster %q runs %s: restore it into a cluster of that version (berth create cluster --from-snapshot %s)",
			m.Name, m.KubernetesVersion, m.Cluster, version, m.Name)
	}
	want := map[string]string{}
	for _, n := range m.Nodes {
		want[nodeMap.name(n.Name)] = n.Role
	}
	have := map[string]string{}
	for _, n := range nodes {
		have[n.Name] = n.Role
	}
	same := len(want) == len(have)
	for name, role := range want {
		if have[name] != role {
			same = false
		}
	}
	if !same {
		return fmt.Errorf("snapshot %q has nodes %s; the cluster has %s: a snapshot only restores into the same node layout (berth create cluster --from-snapshot %s makes a matching cluster)",
			m.Name, layout(m.Nodes), layout(nodes), m.Name)
	}
	if m.CAFingerprint != ca {
		return fmt.Errorf("snapshot %q was taken of another cluster named %q (its certificate authority differs), whose Secrets and tokens would not be valid here (berth create cluster --from-snapshot %s makes a cluster with its CA)",
			m.Name, m.Cluster, m.Name)
	}
	return nil
}

func layout(nodes []Node) string {
	s := ""
	for i, n := range nodes {
		if i > 0 {
			s += ", "
		}
		s += n.Name + " (" + n.Role + ")"
	}
	if s == "" {
		return "none"
	}
	return s
}
