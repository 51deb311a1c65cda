package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/cluster/provider"
)

// An archive written with images (berth snapshot export --images) holds,
// after the snapshot's own files, the images loaded into its nodes:
//
//	<name>/images/index.json   which archive holds which image (ArchivedImage)
//	<name>/images/<n>.tar      one docker-archive (docker save) per image
//
// Import loads them into the host's Docker, where a restore (or create
// --from-snapshot) looks for the images its nodes lack; they are not
// kept in the snapshot's directory.
const (
	imagesDir   = "images"
	imagesIndex = "index.json"
)

// ArchivedImage is an entry of images/index.json.
type ArchivedImage struct {
	// Name and Digest are the image as a node of the snapshot had it.
	Name   string `json:"name"`
	Digest string `json:"digest"`
	// File is the image's docker-archive, under images/.
	File string `json:"file"`
	// Source is where it was exported from: "docker" (the host's engine)
	// or the node whose containerd had it.
	Source string `json:"source"`
}

// ImageSaver writes image img as a docker-archive (what docker load
// reads) to w and says where it took it from. nodes are the snapshot's
// nodes that had it loaded.
type ImageSaver func(ctx context.Context, img Image, nodes []string, w io.Writer) (source string, err error)

// ImageLoader loads a docker-archive into wherever a restore finds
// images (the host's Docker).
type ImageLoader func(ctx context.Context, archive io.Reader) error

// snapshotImages are the images loaded into m's nodes, each once (by
// name), sorted, with the nodes that had each.
func snapshotImages(m *Manifest) ([]Image, map[string][]string) {
	nodes := map[string][]string{}
	var images []Image
	for _, n := range m.Nodes {
		for _, img := range n.Images {
			if _, ok := nodes[img.Name]; !ok {
				images = append(images, img)
			}
			nodes[img.Name] = append(nodes[img.Name], n.Name)
		}
	}
	sort.Slice(images, func(i, j int) bool { return images[i].Name < images[j].Name })
	return images, nodes
}

// SaveImageFrom is an ImageSaver that takes an image from the host's
// Docker (docker save) or, if Docker lacks it, from the containerd of a
// node that has it under its name (ctr images export: an OCI archive
// with Docker's manifest.json, which docker load reads) — the nodes of
// the cluster the snapshot was taken of, if it still runs.
func SaveImageFrom(p provider.Provider) ImageSaver {
	return func(ctx context.Context, img Image, nodes []string, w io.Writer) (string, error) {
		id, err := p.ImageID(ctx, img.Name)
		if err != nil {
			return "", err
		}
		if id != "" {
			rc, err := p.SaveImages(ctx, []string{img.Name})
			if err != nil {
				return "", err
			}
			defer rc.Close()
			if _, err := io.Copy(w, rc); err != nil {
				return "", fmt.Errorf("exporting %s from Docker: %w", img.Name, err)
			}
			return "docker", nil
		}
		var errs []error
		for _, node := range nodes {
			var list bytes.Buffer
			if err := p.Exec(ctx, node, nil, &list, "ctr", "--namespace", "k8s.io", "images", "ls", "-q"); err != nil {
				errs = append(errs, fmt.Errorf("listing the images of %s: %w", node, err))
				continue
			}
			if !containsLine(list.String(), img.Name) {
				errs = append(errs, fmt.Errorf("%s does not have it", node))
				continue
			}
			if err := exportFromNode(ctx, p, node, img.Name, w); err != nil {
				return "", fmt.Errorf("exporting %s from the containerd of %s: %w", img.Name, node, err)
			}
			return node, nil
		}
		return "", fmt.Errorf("image %s is neither in Docker nor in a running node of the snapshot's cluster (%w): load or pull it into Docker and export again", img.Name, errors.Join(errs...))
	}
}

// exportFromNode writes `ctr images export` of image in node to w. The
// archive goes through a file on the node's /var volume and the engine's
// archive endpoint, not the exec's stdout: the engine (Docker 20.10 here)
// now and then cut an exec's stdout short when the process exited, so a
// streamed export could end truncated ("unexpected EOF" at docker load,
// seen in TestFromSnapshot). The file is read whole into memory
// (provider.ReadFile): this is the fallback for an image Docker lacks.
func exportFromNode(ctx context.Context, p provider.Provider, node, image string, w io.Writer) error {
	path := fmt.Sprintf("/var/lib/berth-export-%d.tar", time.Now().UnixNano())
	defer func() { _ = p.Exec(context.WithoutCancel(ctx), node, nil, nil, "rm", "-f", path) }()
	if err := p.Exec(ctx, node, nil, nil, "ctr", "--namespace", "k8s.io", "images", "export", path, image); err != nil {
		return err
	}
	data, err := p.ReadFile(ctx, node, path)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

func containsLine(s, line string) bool {
	for l := range strings.Lines(s) {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
