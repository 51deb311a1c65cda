// Package ociarchive writes container images as OCI image layout tar
// archives, the format containerd imports (`ctr images import`); with
// Options.Docker the same archive also carries the manifest.json that
// Docker's image load reads (any engine version), as `docker save` has
// written since Docker 25. The node image uses it for the images pods
// run from it (pause, CoreDNS, ...) and for the node image itself; the
// conformance images are built with it too. No base image, no registry.
//
// Archives are reproducible: layers come from package layer (sorted,
// fixed times, normalised owners) and every image's creation time is
// layer.Epoch, so the same inputs give the same bytes and the same image
// IDs and digests.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/nodeimage/layer"
)

// File is one file of an image's top layer.
type File struct {
	Path string // inside the image, without leading slash
	Mode int64
	Data []byte
	// Link makes the entry a symbolic link to Link (Data is ignored).
	Link string
}

// Image describes an image to write.
type Image struct {
	// Name is the full reference containerd (and Docker) register, such
	// as registry.k8s.io/pause:3.10.2.
	Name string
	// Layers are the image's layers below Files, bottom first (a base
	// root filesystem). Images may share them; each is stored once.
	Layers []*Layer
	// Files make the top layer. Without Layers they make the only one
	// (even when empty); with Layers, no files means no top layer.
	Files        []File
	Entrypoint   []string
	Cmd          []string
	Env          []string
	User         string
	WorkingDir   string
	StopSignal   string
	ExposedPorts []string // "80/tcp"
	Labels       map[string]string
	// Arch defaults to the running architecture.
	Arch string
}

// Options choose what an archive carries besides the OCI layout.
type Options struct {
	// Docker adds manifest.json (the docker-archive index, with each
	// image's name as its tag), so that Docker's image load reads the
	// archive too.
	Docker bool
	// Layer makes the layer of an image's Files from its uncompressed
	// tar stream (default NewLayer: gzip, fastest level).
	Layer func(src io.WriterTo) (*Layer, error)
}

// Layer is one layer of an image: its uncompressed tar stream's digest
// (the diff ID) and the blob the archive stores.
type Layer struct {
	DiffID digest.Digest
	blob
}

// blob is content of the archive, in memory or in a file.
type blob struct {
	mediaType string
	digest    digest.Digest
	size      int64
	data      []byte
	path      string
}

// NewLayer writes src (an uncompressed tar stream, such as a
// *layer.Layer) into memory, gzip-compressed: for the small layers of pod
// images, which ship inside the node image.
func NewLayer(src io.WriterTo) (*Layer, error) {
	var raw bytes.Buffer
	if _, err := src.WriteTo(&raw); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &Layer{
		DiffID: digest.FromBytes(raw.Bytes()),
		blob:   memBlob(v1.MediaTypeImageLayerGzip, gz.Bytes()),
	}, nil
}

// WriteLayerFile writes src (an uncompressed tar stream) to the file path,
// hashing it on the way, and returns it as a layer stored uncompressed:
// for a whole root filesystem going straight into an engine, where
// compressing hundreds of megabytes would only cost time. The file must
// stay until the archive is written.
func WriteLayerFile(path string, src io.WriterTo) (*Layer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := src.WriteTo(io.MultiWriter(f, h))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing layer %s: %w", path, err)
	}
	return fileLayer(path, digest.NewDigest(digest.SHA256, h), n), nil
}

// fileLayer is an uncompressed layer kept in a file.
func fileLayer(path string, d digest.Digest, size int64) *Layer {
	return &Layer{DiffID: d, blob: blob{mediaType: v1.MediaTypeImageLayer, digest: d, size: size, path: path}}
}

// OpenLayerFile returns the layer WriteLayerFile (or anything else)
// wrote to path earlier, hashing it again.
func OpenLayerFile(path string) (*Layer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", path, err)
	}
	return fileLayer(path, digest.NewDigest(digest.SHA256, h), n), nil
}

// NewZstdLayer is NewLayer with zstd at its best compression: ~25% smaller
// than gzip's fastest level on Go binaries and quicker to decompress
// (containerd 2.x imports and unpacks zstd layers), but slow to compress
// (tens of seconds for 80 MB) — for layers built once and cached.
func NewZstdLayer(src io.WriterTo) (*Layer, error) {
	var raw bytes.Buffer
	if _, err := src.WriteTo(&raw); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return ZstdLayer(digest.FromBytes(raw.Bytes()), out.Bytes()), nil
}

// ZstdLayer is a layer whose zstd-compressed blob is data, diffID the
// digest of its uncompressed tar stream (a layer NewZstdLayer made
// earlier, kept by its caller).
func ZstdLayer(diffID digest.Digest, data []byte) *Layer {
	return &Layer{DiffID: diffID, blob: memBlob(v1.MediaTypeImageLayerZstd, data)}
}

// Blob is the layer's stored (compressed) content when it is held in
// memory, nil otherwise.
func (l *Layer) Blob() []byte { return l.data }

func memBlob(mediaType string, data []byte) blob {
	return blob{mediaType: mediaType, digest: digest.FromBytes(data), size: int64(len(data)), data: data}
}

func (b blob) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: b.mediaType, Digest: b.digest, Size: b.size}
}

func (b blob) name() string {
	return v1.ImageBlobsDir + "/" + b.digest.Algorithm().String() + "/" + b.digest.Encoded()
}

func (b blob) writeTo(tw *tar.Writer) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: b.name(), Mode: 0o644, Size: b.size, ModTime: layer.Epoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if b.path == "" {
		_, err := tw.Write(b.data)
		return err
	}
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(tw, f, b.size)
	return err
}

// layerOf is the layer of a list of files.
func layerOf(files []File) *layer.Layer {
	l := layer.New()
	for _, f := range files {
		if f.Link != "" {
			l.AddSymlink(f.Path, f.Link)
		} else {
			l.AddFile(f.Path, f.Mode, f.Data)
		}
	}
	return l
}

// config is the image configuration img describes, its creation
// time layer.Epoch.
func (img *Image) config(diffIDs []digest.Digest) v1.Image {
	created := layer.Epoch
	cfg := v1.Image{
		Created:  &created,
		Platform: v1.Platform{Architecture: img.arch(), OS: "linux"},
		Config: v1.ImageConfig{
			User:       img.User,
			Env:        img.Env,
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			WorkingDir: img.WorkingDir,
			Labels:     img.Labels,
			StopSignal: img.StopSignal,
		},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	for _, p := range img.ExposedPorts {
		if cfg.Config.ExposedPorts == nil {
			cfg.Config.ExposedPorts = map[string]struct{}{}
		}
		cfg.Config.ExposedPorts[p] = struct{}{}
	}
	return cfg
}

func (img *Image) arch() string {
	if img.Arch != "" {
		return img.Arch
	}
	return runtime.GOARCH
}

// Write writes img to w as an OCI image layout tar archive.
func Write(w io.Writer, img Image) error { return WriteImages(w, img) }

// WriteImages writes several images into one OCI image layout tar
// archive, each under its own name in the index. Blobs the images share
// (the same files make the same layer) are stored once, so images that
// differ only in their configuration (a multicall binary with another
// entrypoint) cost one layer.
func WriteImages(w io.Writer, imgs ...Image) error { return WriteArchive(w, Options{}, imgs...) }

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// WriteArchive writes imgs into one archive, as WriteImages does, with
// what opts adds.
func WriteArchive(w io.Writer, opts Options, imgs ...Image) error {
	if len(imgs) == 0 {
		return fmt.Errorf("no image to write")
	}
	var blobs []blob
	seen := map[digest.Digest]bool{}
	add := func(b blob) {
		if !seen[b.digest] {
			seen[b.digest] = true
			blobs = append(blobs, b)
		}
	}
	made := filesLayers{newLayer: opts.Layer}
	index := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	var docker []dockerManifest
	for _, img := range imgs {
		layers, err := img.layers(&made)
		if err != nil {
			return err
		}
		manifest := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest}
		var diffIDs []digest.Digest
		var dockerLayers []string
		for _, l := range layers {
			diffIDs = append(diffIDs, l.DiffID)
			manifest.Layers = append(manifest.Layers, l.descriptor())
			dockerLayers = append(dockerLayers, l.name())
			add(l.blob)
		}
		config, err := img.configBlob(diffIDs)
		if err != nil {
			return err
		}
		manifest.Config = config.descriptor()
		manifestJSON, err := json.Marshal(manifest)
		if err != nil {
			return err
		}
		m := memBlob(v1.MediaTypeImageManifest, manifestJSON)
		add(config)
		add(m)
		desc := m.descriptor()
		desc.Annotations = map[string]string{
			"io.containerd.image.name": img.Name,
			v1.AnnotationRefName:       img.Name,
		}
		desc.Platform = &v1.Platform{Architecture: img.arch(), OS: "linux"}
		index.Manifests = append(index.Manifests, desc)
		docker = append(docker, dockerManifest{Config: config.name(), RepoTags: []string{img.Name}, Layers: dockerLayers})
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	layoutJSON, err := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{{v1.ImageLayoutFile, layoutJSON}, {v1.ImageIndexFile, indexJSON}}
	if opts.Docker {
		dockerJSON, err := json.Marshal(docker)
		if err != nil {
			return err
		}
		files = append(files, struct {
			name string
			data []byte
		}{"manifest.json", dockerJSON})
	}

	tw := tar.NewWriter(w)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: layer.Epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: layer.Epoch}); err != nil {
			return err
		}
	}
	for _, b := range blobs {
		if err := b.writeTo(tw); err != nil {
			return fmt.Errorf("writing blob %s: %w", b.digest, err)
		}
	}
	return tw.Close()
}

// filesLayers remembers the layers made of Files, so that images of the
// same files share one.
type filesLayers struct {
	list []filesLayer
	// newLayer makes a layer (nil: NewLayer).
	newLayer func(src io.WriterTo) (*Layer, error)
}

type filesLayer struct {
	files []File
	layer *Layer
}

// layers returns img's layers, bottom first, making the one of its Files.
func (img *Image) layers(made *filesLayers) ([]*Layer, error) {
	layers := append([]*Layer(nil), img.Layers...)
	if len(img.Files) == 0 && len(layers) > 0 {
		return layers, nil
	}
	for _, m := range made.list {
		if sameFiles(m.files, img.Files) {
			return append(layers, m.layer), nil
		}
	}
	newLayer := made.newLayer
	if newLayer == nil {
		newLayer = NewLayer
	}
	top, err := newLayer(layerOf(img.Files))
	if err != nil {
		return nil, fmt.Errorf("building layer of %s: %w", img.Name, err)
	}
	made.list = append(made.list, filesLayer{img.Files, top})
	return append(layers, top), nil
}

func (img *Image) configBlob(diffIDs []digest.Digest) (blob, error) {
	configJSON, err := json.Marshal(img.config(diffIDs))
	if err != nil {
		return blob{}, err
	}
	return memBlob(v1.MediaTypeImageConfig, configJSON), nil
}

// ID is the ID Docker gives the image once loaded, the digest of its
// configuration; the same image written again has the same ID.
func (img *Image) ID() (digest.Digest, error) {
	var made filesLayers
	layers, err := img.layers(&made)
	if err != nil {
		return "", err
	}
	var diffIDs []digest.Digest
	for _, l := range layers {
		diffIDs = append(diffIDs, l.DiffID)
	}
	config, err := img.configBlob(diffIDs)
	return config.digest, err
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

// Loader is a container engine that loads docker-archive streams
// (Docker's image load).
type Loader interface {
	LoadImage(ctx context.Context, archive io.Reader) error
}

// Load streams imgs into e as one archive (with Options.Docker), as it is
// written.
func Load(ctx context.Context, e Loader, imgs ...Image) error {
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := WriteArchive(pw, Options{Docker: true}, imgs...)
		pw.CloseWithError(err)
		written <- err
	}()
	err := e.LoadImage(ctx, pr)
	// Unblocks the writer if the engine stopped reading early.
	pr.CloseWithError(errors.New("image load ended"))
	if werr := <-written; err == nil && werr != nil {
		err = fmt.Errorf("writing images: %w", werr)
	}
	return err
}
