package ociarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/nodeimage/layer"
	"github.com/berth-dev/berth/nodeimage/layer/layertest"
)

// archive is a written archive, read back.
type archive struct {
	files map[string][]byte
}

func readArchive(t *testing.T, b []byte) archive {
	t.Helper()
	return archive{files: layertest.Files(t, bytes.NewReader(b))}
}

// blob returns the blob d, checking it matches its digest.
func (a archive) blob(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	b, ok := a.files["blobs/sha256/"+d.Encoded()]
	if !ok {
		t.Fatalf("blob %s missing", d)
	}
	if digest.FromBytes(b) != d {
		t.Fatalf("blob %s does not match its digest", d)
	}
	return b
}

func (a archive) index(t *testing.T) v1.Index {
	t.Helper()
	var index v1.Index
	if err := json.Unmarshal(a.files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	return index
}

// image returns the manifest and config of the index's i-th image.
func (a archive) image(t *testing.T, i int) (v1.Manifest, v1.Image) {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(a.blob(t, a.index(t).Manifests[i].Digest), &m); err != nil {
		t.Fatal(err)
	}
	var c v1.Image
	if err := json.Unmarshal(a.blob(t, m.Config.Digest), &c); err != nil {
		t.Fatal(err)
	}
	return m, c
}

// layerFiles reads a gzip or plain layer blob's entries.
func layerFiles(t *testing.T, blob []byte, mediaType string) map[string]*tar.Header {
	t.Helper()
	var r io.Reader = bytes.NewReader(blob)
	switch mediaType {
	case v1.MediaTypeImageLayerGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case v1.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	return layertest.Headers(t, r)
}

func write(t *testing.T, opts Options, imgs ...Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteArchive(&buf, opts, imgs...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var pause = Image{Name: "registry.k8s.io/pause:3.10.2", Entrypoint: []string{"/pause"}, Files: []File{{Path: "pause", Mode: 0o755, Data: []byte("binary")}}}

func TestWriteProducesConsistentLayout(t *testing.T) {
	a := readArchive(t, write(t, Options{}, pause))
	if string(a.files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", a.files["oci-layout"])
	}
	if _, ok := a.files["manifest.json"]; ok {
		t.Error("manifest.json written without Options.Docker")
	}
	index := a.index(t)
	if len(index.Manifests) != 1 || index.SchemaVersion != 2 || index.MediaType != v1.MediaTypeImageIndex {
		t.Fatalf("index = %s", a.files["index.json"])
	}
	d := index.Manifests[0]
	// containerd's import names images from these annotations.
	if d.Annotations["io.containerd.image.name"] != pause.Name || d.Annotations[v1.AnnotationRefName] != pause.Name {
		t.Errorf("annotations = %v", d.Annotations)
	}
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture == "" {
		t.Errorf("platform = %+v", d.Platform)
	}
	m, c := a.image(t, 0)
	if m.MediaType != v1.MediaTypeImageManifest || m.Config.MediaType != v1.MediaTypeImageConfig || len(m.Layers) != 1 {
		t.Fatalf("manifest = %+v", m)
	}
	if c.Created == nil || !c.Created.Equal(layer.Epoch) {
		t.Errorf("created = %v, want %v", c.Created, layer.Epoch)
	}
	if len(c.Config.Entrypoint) != 1 || c.Config.Entrypoint[0] != "/pause" {
		t.Errorf("entrypoint = %v", c.Config.Entrypoint)
	}
	blob := a.blob(t, m.Layers[0].Digest)
	files := layerFiles(t, blob, m.Layers[0].MediaType)
	if h := files["pause"]; h == nil || h.Mode != 0o755 || !h.ModTime.Equal(layer.Epoch) {
		t.Errorf("layer entry pause = %+v", h)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(blob))
	raw, _ := io.ReadAll(zr)
	if len(c.RootFS.DiffIDs) != 1 || c.RootFS.DiffIDs[0] != digest.FromBytes(raw) {
		t.Errorf("diff IDs %v do not match the uncompressed layer", c.RootFS.DiffIDs)
	}
	if !bytes.Equal(write(t, Options{}, pause), write(t, Options{}, pause)) {
		t.Error("the same image written twice differs: archives are not reproducible")
	}
}

// With Options.Layer NewZstdLayer, the Files layer is zstd-compressed,
// its diff ID still the uncompressed stream's, and reproducible.
func TestZstdLayers(t *testing.T) {
	opts := Options{Layer: NewZstdLayer}
	a := readArchive(t, write(t, opts, pause))
	m, c := a.image(t, 0)
	if len(m.Layers) != 1 || m.Layers[0].MediaType != v1.MediaTypeImageLayerZstd {
		t.Fatalf("layers = %+v", m.Layers)
	}
	blob := a.blob(t, m.Layers[0].Digest)
	if h := layerFiles(t, blob, m.Layers[0].MediaType)["pause"]; h == nil || h.Mode != 0o755 {
		t.Errorf("layer entry pause = %+v", h)
	}
	zr, _ := zstd.NewReader(bytes.NewReader(blob))
	raw, _ := io.ReadAll(zr)
	zr.Close()
	if len(c.RootFS.DiffIDs) != 1 || c.RootFS.DiffIDs[0] != digest.FromBytes(raw) {
		t.Errorf("diff IDs %v do not match the uncompressed layer", c.RootFS.DiffIDs)
	}
	// The configuration (and so the image ID) does not depend on the
	// compression.
	_, gz := readArchive(t, write(t, Options{}, pause)).image(t, 0)
	if gz.RootFS.DiffIDs[0] != c.RootFS.DiffIDs[0] {
		t.Errorf("diff ID %s with zstd, %s with gzip", c.RootFS.DiffIDs[0], gz.RootFS.DiffIDs[0])
	}
	if !bytes.Equal(write(t, opts, pause), write(t, opts, pause)) {
		t.Error("the same image written twice differs: archives are not reproducible")
	}
}

func TestSharedLayersAreStoredOnce(t *testing.T) {
	controller := Image{Name: "quay.io/metallb/controller:v0.16.2", Entrypoint: []string{"/metallb", "controller"}, Files: []File{{Path: "metallb", Mode: 0o755, Data: []byte("multicall")}, {Path: "controller", Link: "metallb"}}}
	speaker := controller
	speaker.Name, speaker.Entrypoint = "quay.io/metallb/speaker:v0.16.2", []string{"/metallb", "speaker"}
	a := readArchive(t, write(t, Options{}, controller, speaker))
	m0, c0 := a.image(t, 0)
	m1, c1 := a.image(t, 1)
	if m0.Layers[0].Digest != m1.Layers[0].Digest {
		t.Error("images of the same files have different layers")
	}
	if c0.Config.Entrypoint[1] != "controller" || c1.Config.Entrypoint[1] != "speaker" {
		t.Errorf("entrypoints = %v, %v", c0.Config.Entrypoint, c1.Config.Entrypoint)
	}
	blobs := 0
	for name := range a.files {
		if filepath.Dir(name) == "blobs/sha256" && !strings.HasSuffix(name, "/") {
			blobs++
		}
	}
	if blobs != 5 { // 1 layer, 2 configs, 2 manifests
		t.Errorf("%d blobs, want 5", blobs)
	}
}

func TestDockerArchiveWithBaseLayerFromFile(t *testing.T) {
	root := layer.New()
	root.AddFile("etc/os-release", 0o644, []byte("ID=debian\n"))
	root.AddDir("tmp", 0o1777)
	base, err := WriteLayerFile(filepath.Join(t.TempDir(), "base.tar"), root)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if _, err := root.WriteTo(&raw); err != nil {
		t.Fatal(err)
	}
	if base.DiffID != digest.FromBytes(raw.Bytes()) {
		t.Fatalf("file layer diff ID %s, want %s", base.DiffID, digest.FromBytes(raw.Bytes()))
	}
	node := Image{
		Name:       "berth/node:v1.37.2",
		Layers:     []*Layer{base},
		Entrypoint: []string{"/usr/local/bin/berth-node"},
		Env:        []string{"PATH=/usr/bin:/bin"},
		Labels:     map[string]string{"berth.dev/node-recipe": "abc"},
	}
	web := Image{
		Name:         "registry.k8s.io/e2e-test-images/nginx:1.27-0",
		Layers:       []*Layer{base},
		Files:        []File{{Path: "usr/share/nginx/html/index.html", Mode: 0o644, Data: []byte("<html/>")}},
		Cmd:          []string{"nginx", "-g", "daemon off;"},
		ExposedPorts: []string{"80/tcp"},
		StopSignal:   "SIGQUIT",
		User:         "1234",
	}
	out := write(t, Options{Docker: true}, node, web)
	a := readArchive(t, out)
	var manifests []dockerManifest
	if err := json.Unmarshal(a.files["manifest.json"], &manifests); err != nil {
		t.Fatal(err)
	}
	if len(manifests) != 2 || manifests[0].RepoTags[0] != node.Name || manifests[1].RepoTags[0] != web.Name {
		t.Fatalf("manifest.json = %s", a.files["manifest.json"])
	}
	// Docker reads the config and layers from manifest.json's paths.
	for i, dm := range manifests {
		m, c := a.image(t, i)
		if dm.Config != "blobs/sha256/"+m.Config.Digest.Encoded() {
			t.Errorf("docker config %s, OCI config %s", dm.Config, m.Config.Digest)
		}
		if len(dm.Layers) != len(m.Layers) || len(c.RootFS.DiffIDs) != len(m.Layers) {
			t.Fatalf("image %d: %d docker layers, %d OCI layers, %d diff IDs", i, len(dm.Layers), len(m.Layers), len(c.RootFS.DiffIDs))
		}
		if dm.Layers[0] != "blobs/sha256/"+base.DiffID.Encoded() || m.Layers[0].MediaType != v1.MediaTypeImageLayer {
			t.Errorf("image %d: base layer %s (%s), want the uncompressed %s", i, dm.Layers[0], m.Layers[0].MediaType, base.DiffID)
		}
		if !bytes.Equal(a.blob(t, base.DiffID), raw.Bytes()) {
			t.Error("the base layer was not stored as written")
		}
	}
	for i, img := range []Image{node, web} {
		m, _ := a.image(t, i)
		if id, err := img.ID(); err != nil || id != m.Config.Digest {
			t.Errorf("%s: ID() = %s, %v; its config is %s", img.Name, id, err, m.Config.Digest)
		}
	}
	reopened, err := OpenLayerFile(base.path)
	if err != nil || reopened.DiffID != base.DiffID || reopened.size != base.size {
		t.Errorf("OpenLayerFile = %+v, %v; written %+v", reopened, err, base)
	}
	_, nc := a.image(t, 0)
	if nc.Config.Labels["berth.dev/node-recipe"] != "abc" || nc.Config.Env[0] != "PATH=/usr/bin:/bin" || len(nc.RootFS.DiffIDs) != 1 {
		t.Errorf("node config = %+v", nc)
	}
	_, wc := a.image(t, 1)
	if _, ok := wc.Config.ExposedPorts["80/tcp"]; !ok || wc.Config.StopSignal != "SIGQUIT" || wc.Config.User != "1234" || len(wc.RootFS.DiffIDs) != 2 {
		t.Errorf("web config = %+v", wc)
	}
	if h := layerFiles(t, a.blob(t, base.DiffID), v1.MediaTypeImageLayer)["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/ = %+v", h)
	}
	if !bytes.Equal(out, write(t, Options{Docker: true}, node, web)) {
		t.Error("the same archive written twice differs")
	}
}

func TestNoImage(t *testing.T) {
	if err := WriteImages(io.Discard); err == nil {
		t.Error("an archive without images was written")
	}
}

type loader func(io.Reader) error

func (l loader) LoadImage(_ context.Context, r io.Reader) error { return l(r) }

func TestLoad(t *testing.T) {
	var got []byte
	if err := Load(context.Background(), loader(func(r io.Reader) (err error) { got, err = io.ReadAll(r); return err }), pause); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, write(t, Options{Docker: true}, pause)) {
		t.Error("Load did not stream the docker archive of the images")
	}
	// An engine that gives up early must not leave the writer blocked.
	refused := errors.New("no space left")
	if err := Load(context.Background(), loader(func(io.Reader) error { return refused }), pause); !errors.Is(err, refused) {
		t.Errorf("err = %v, want the engine's", err)
	}
}
