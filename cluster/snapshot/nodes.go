package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// Paths and programs inside a node.
const (
	berthNode = "/usr/local/bin/berth-node"
	// VolumesDir is where local-path-provisioner keeps every volume.
	VolumesDir = "/var/local-path-provisioner"
	// stagingDir holds the files a restore copies into a node.
	stagingDir = "/var/tmp/berth-snapshot"
	// nodeImagesDir holds the archives of the images a node image brings.
	nodeImagesDir = "/opt/berth/images"
	// volumesLock serialises volume restores in a node (an interrupted
	// restore and its rollback).
	volumesLock = "/run/berth/volumes.lock"
)

// target is what a save or restore needs to know of a running cluster.
type target struct {
	cluster string
	version string
	nodes   []Node
	// controlPlanes are the control-plane nodes; the first one takes the
	// etcd snapshot and runs the restore.
	controlPlanes []string
	ca            string
}

// inspect reads a running cluster's layout, version and CA.
func inspect(ctx context.Context, p provider.Provider, name string) (*target, error) {
	all, err := cluster.Nodes(ctx, p, name)
	if err != nil {
		return nil, err
	}
	t := &target{cluster: name}
	for _, n := range all {
		if n.Role == nodeconfig.RoleLoadBalancer {
			continue
		}
		if n.State != "running" {
			return nil, fmt.Errorf("node %s of cluster %q is %s; start the cluster first (berth start cluster --name %s)", n.Name, name, n.State, name)
		}
		t.nodes = append(t.nodes, Node{Name: n.Name, Role: n.Role})
		if v := n.Labels[nodeconfig.LabelKubernetesVersion]; v != "" {
			t.version = v
		}
		if n.Role == nodeconfig.RoleControlPlane {
			t.controlPlanes = append(t.controlPlanes, n.Name)
		}
	}
	if len(t.controlPlanes) == 0 {
		return nil, fmt.Errorf("cluster %q has no control-plane node", name)
	}
	ca, err := p.ReadFile(ctx, t.controlPlanes[0], path.Join(nodeconfig.PKIDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading the cluster CA: %w", err)
	}
	t.ca = fingerprint(ca)
	return t, nil
}

func fingerprint(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// execToFile runs cmd in node and writes its stdout to file (0600).
func execToFile(ctx context.Context, p provider.Provider, node, file string, cmd ...string) (int64, error) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: f}
	err = p.Exec(ctx, node, nil, cw, cmd...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// stageScript writes stdin to $1 only if all $2 bytes arrive: a copy cut
// short (an interrupted CLI) never passes for a whole file.
const stageScript = `set -e; mkdir -p "$(dirname "$1")"; cat > "$1.part"; [ "$(stat -c %s "$1.part")" = "$2" ] || { rm -f "$1.part"; echo "incomplete copy" >&2; exit 1; }; mv "$1.part" "$1"`

// stage copies the local file src into node at dst.
func stage(ctx context.Context, p provider.Provider, node, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := p.Exec(ctx, node, f, nil, "sh", "-c", stageScript, "_", dst, strconv.FormatInt(st.Size(), 10)); err != nil {
		return fmt.Errorf("copying %s into node %s: %w", src, node, err)
	}
	return nil
}

// saveVolumesCmd writes a node's volumes as a tar stream.
var saveVolumesCmd = []string{"sh", "-c", `mkdir -p ` + VolumesDir + ` && exec tar -C ` + VolumesDir + ` -cf - .`}

// restoreVolumesScript replaces a node's volumes with the tar archive $1;
// the other arguments are the archive's top-level entries (one directory
// per volume). Volume directories stay (emptied, then refilled) rather
// than being replaced: running pods bind-mount them, and a new directory
// would not be what they see. Entries the snapshot lacks are removed.
const restoreVolumesScript = `set -eu
f=$1; shift
d=` + VolumesDir + `
mkdir -p "$d" /run/berth
exec 9>` + volumesLock + `
flock 9
for e in "$d"/* "$d"/.[!.]*; do
  [ -e "$e" ] || continue
  keep=
  for k in "$@"; do [ "${e##*/}" = "$k" ] && keep=1; done
  [ -n "$keep" ] || rm -rf "$e"
done
find "$d" -mindepth 2 -delete
tar -C "$d" -xpf "$f"
rm -f "$f"`

// topLevel returns the top-level entries of a tar archive made with
// tar -C dir -cf - . (names ./x/...).
func topLevel(archive string) ([]string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", archive, err)
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		if name == "." || name == "" {
			continue
		}
		first, _, _ := strings.Cut(name, "/")
		if !slices.Contains(out, first) {
			out = append(out, first)
		}
	}
}

// builtinImagesScript prints the index.json of every image archive the
// node image brings.
const builtinImagesScript = `for a in ` + nodeImagesDir + `/*.tar; do tar -xOf "$a" index.json 2>/dev/null || true; echo; done`

// loadedImages lists the images in node's containerd that its node image
// did not bring: what berth load image (or a pull) put there.
func loadedImages(ctx context.Context, p provider.Provider, node string) ([]Image, error) {
	var builtin, list bytes.Buffer
	if err := p.Exec(ctx, node, nil, &builtin, "sh", "-c", builtinImagesScript); err != nil {
		return nil, fmt.Errorf("listing the node image's images in %s: %w", node, err)
	}
	skip := map[string]bool{}
	dec := json.NewDecoder(&builtin)
	for {
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := dec.Decode(&idx); err != nil {
			break
		}
		for _, m := range idx.Manifests {
			skip[m.Annotations["io.containerd.image.name"]] = true
		}
	}
	if err := p.Exec(ctx, node, nil, &list, "ctr", "--namespace", "k8s.io", "images", "ls"); err != nil {
		return nil, fmt.Errorf("listing images in %s: %w", node, err)
	}
	return parseImageList(list.String(), skip), nil
}

// parseImageList reads `ctr images ls` (REF TYPE DIGEST SIZE ...),
// leaving out digest-only references (the CRI's aliases of a named
// image) and the names in skip.
func parseImageList(out string, skip map[string]bool) []Image {
	var images []Image
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] == "REF" || strings.HasPrefix(f[0], "sha256:") || strings.Contains(f[0], "@") || skip[f[0]] {
			continue
		}
		images = append(images, Image{Name: f[0], Digest: f[2]})
	}
	return images
}
