package ociarchive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

func TestWriteProducesConsistentLayout(t *testing.T) {
	var buf bytes.Buffer
	img := Image{Name: "registry.k8s.io/pause:3.10.2", Entrypoint: []string{"/pause"}, Files: []File{{Path: "pause", Mode: 0o755, Data: []byte("binary")}}}
	if err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != img.Name {
		t.Fatalf("index = %s", files["index.json"])
	}
	manifestData, ok := files["blobs/sha256/"+index.Manifests[0].Digest[len("sha256:"):]]
	if !ok {
		t.Fatal("manifest blob missing")
	}
	if digest(manifestData) != index.Manifests[0].Digest {
		t.Error("manifest digest does not match its content")
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(manifestData, &manifest); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]string{manifest.Config.Digest}, manifest.Layers[0].Digest) {
		blob, ok := files["blobs/sha256/"+d[len("sha256:"):]]
		if !ok || digest(blob) != d {
			t.Errorf("blob %s missing or corrupt", d)
		}
	}
	var again bytes.Buffer
	if err := Write(&again, img); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	_ = Write(&first, img)
	if !bytes.Equal(first.Bytes(), again.Bytes()) {
		t.Error("the same image written twice differs: archives are not reproducible")
	}
}
