// Package ociarchive writes single-layer container images as OCI image
// layout tar archives, the format containerd imports. The node image uses
// it for the images pods run from it (pause, CoreDNS), built from Go
// binaries with no base image and no registry.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"
)

// File is one file of the image's only layer.
type File struct {
	Path string // inside the image, without leading slash
	Mode int64
	Data []byte
	// Link makes the entry a symbolic link to Link (Data is ignored).
	Link string
}

// Image describes an image to write.
type Image struct {
	// Name is the full reference containerd registers, such as
	// registry.k8s.io/pause:3.10.2.
	Name       string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string
	// Arch defaults to the running architecture.
	Arch string
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// epoch keeps layer contents reproducible, so an unchanged image has an
// unchanged digest.
var epoch = time.Unix(0, 0).UTC()

func layer(files []File) (compressed []byte, diffID string, err error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := parentDirs(f.Path); len(d) > 0; d = d[1:] {
			if dirs[d[0]] {
				continue
			}
			dirs[d[0]] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[0] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, "", err
			}
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: f.Path, Linkname: f.Link, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, "", err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: epoch}); err != nil {
			return nil, "", err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID = digest(raw.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

// parentDirs returns the parent directories of p, outermost first.
func parentDirs(p string) []string {
	var dirs []string
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			dirs = append(dirs, p[:i])
		}
	}
	return dirs
}

// Write writes img to w as an OCI image layout tar archive.
func Write(w io.Writer, img Image) error { return WriteImages(w, img) }

// WriteImages writes several images into one OCI image layout tar
// archive, each under its own name in the index. Blobs the images share
// (the same files make the same layer) are stored once, so images that
// differ only in their configuration (a multicall binary with another
// entrypoint) cost one layer.
func WriteImages(w io.Writer, imgs ...Image) error {
	if len(imgs) == 0 {
		return fmt.Errorf("no image to write")
	}
	var blobs [][]byte
	seen := map[string]bool{}
	addBlob := func(b []byte) {
		if d := digest(b); !seen[d] {
			seen[d] = true
			blobs = append(blobs, b)
		}
	}
	var manifests []descriptor
	type built struct {
		files  []File
		blob   []byte
		diffID string
	}
	var layers []built
	for _, img := range imgs {
		arch := img.Arch
		if arch == "" {
			arch = runtime.GOARCH
		}
		var layerBlob []byte
		var diffID string
		for _, l := range layers {
			if sameFiles(l.files, img.Files) {
				layerBlob, diffID = l.blob, l.diffID
				break
			}
		}
		if layerBlob == nil {
			var err error
			if layerBlob, diffID, err = layer(img.Files); err != nil {
				return fmt.Errorf("building layer of %s: %w", img.Name, err)
			}
			layers = append(layers, built{img.Files, layerBlob, diffID})
		}
		config := map[string]any{
			"architecture": arch,
			"os":           "linux",
			"created":      epoch.Format(time.RFC3339),
			"config": map[string]any{
				"Entrypoint": img.Entrypoint,
				"Cmd":        img.Cmd,
				"Env":        img.Env,
				"User":       img.User,
			},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		}
		configBlob, err := json.Marshal(config)
		if err != nil {
			return err
		}
		manifest := map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest(configBlob), Size: int64(len(configBlob))},
			"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digest(layerBlob), Size: int64(len(layerBlob))}},
		}
		manifestBlob, err := json.Marshal(manifest)
		if err != nil {
			return err
		}
		addBlob(layerBlob)
		addBlob(configBlob)
		addBlob(manifestBlob)
		manifests = append(manifests, descriptor{
			MediaType: "application/vnd.oci.image.manifest.v1+json",
			Digest:    digest(manifestBlob),
			Size:      int64(len(manifestBlob)),
			Annotations: map[string]string{
				"io.containerd.image.name":          img.Name,
				"org.opencontainers.image.ref.name": img.Name,
			},
			Platform: map[string]string{"architecture": arch, "os": "linux"},
		})
	}
	index := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     manifests,
	}
	indexBlob, err := json.Marshal(index)
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", indexBlob},
	}
	for _, b := range blobs {
		entries = append(entries, struct {
			name string
			data []byte
		}{blobPath(b), b})
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// sameFiles reports whether two file lists make the same layer.
func sameFiles(a, b []File) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || a[i].Mode != b[i].Mode || a[i].Link != b[i].Link || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func blobPath(b []byte) string {
	return "blobs/sha256/" + digest(b)[len("sha256:"):]
}
