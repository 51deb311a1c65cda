package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// imageSnapshot is a store with snapshot golden of nodes that had images
// loaded: app:1 on both nodes, tool:2 on the worker alone.
func imageSnapshot(t *testing.T) Store {
	t.Helper()
	s := Store{Dir: filepath.Join(t.TempDir(), "a")}
	dir, err := s.begin("golden")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{etcdFile: "etcd", pkiFile: "pki"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := manifest("golden")
	m.Nodes = []Node{
		{Name: "a-control-plane", Role: "control-plane", Images: []Image{{Name: "docker.io/library/app:1", Digest: "sha256:aa"}}},
		{Name: "a-worker", Role: "worker", Images: []Image{{Name: "docker.io/library/tool:2", Digest: "sha256:bb"}, {Name: "docker.io/library/app:1", Digest: "sha256:aa"}}},
	}
	if err := s.commit(dir, m, false); err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeSaver "saves" an image as a short text naming it and the nodes it
// was asked about; tool:2 comes from a node, as if Docker lacked it.
func fakeSaver(ctx context.Context, img Image, nodes []string, w io.Writer) (string, error) {
	fmt.Fprintf(w, "archive of %s from %s", img.Name, strings.Join(nodes, ","))
	if strings.Contains(img.Name, "tool") {
		return nodes[0], nil
	}
	return "docker", nil
}

func TestExportImages(t *testing.T) {
	src := imageSnapshot(t)
	var buf bytes.Buffer
	if err := src.Export(context.Background(), "golden", &buf, ExportOptions{SaveImage: fakeSaver, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}

	// The layout: the snapshot's files first (manifest.json before any
	// image), then images/, its index, one archive per image by name.
	var names []string
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		data, _ := io.ReadAll(tr)
		files[h.Name] = string(data)
	}
	manifestAt := slices.Index(names, "golden/manifest.json")
	imagesAt := slices.Index(names, "golden/images/")
	if manifestAt < 0 || imagesAt < manifestAt {
		t.Fatalf("entries %v: want manifest.json, then images/", names)
	}
	if got, want := names[imagesAt:], []string{"golden/images/", "golden/images/index.json", "golden/images/0.tar", "golden/images/1.tar"}; !slices.Equal(got, want) {
		t.Errorf("image entries %v, want %v", got, want)
	}
	var index []ArchivedImage
	if err := json.Unmarshal([]byte(files["golden/images/index.json"]), &index); err != nil {
		t.Fatal(err)
	}
	want := []ArchivedImage{
		{Name: "docker.io/library/app:1", Digest: "sha256:aa", File: "0.tar", Source: "docker"},
		{Name: "docker.io/library/tool:2", Digest: "sha256:bb", File: "1.tar", Source: "a-worker"},
	}
	if !slices.Equal(index, want) {
		t.Errorf("index %+v, want %+v", index, want)
	}
	if got := files["golden/images/0.tar"]; got != "archive of docker.io/library/app:1 from a-control-plane,a-worker" {
		t.Errorf("0.tar holds %q", got)
	}
	if got := files["golden/images/1.tar"]; got != "archive of docker.io/library/tool:2 from a-worker" {
		t.Errorf("1.tar holds %q", got)
	}

	// Import loads each image, in order, and keeps none in the store.
	dst := Store{Dir: filepath.Join(t.TempDir(), "b")}
	var loaded []string
	load := func(ctx context.Context, r io.Reader) error {
		data, err := io.ReadAll(r)
		loaded = append(loaded, string(data))
		return err
	}
	res, err := dst.Import(context.Background(), bytes.NewReader(buf.Bytes()), "copy", ImportOptions{LoadImage: load})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Name != "copy" || !slices.Equal(res.Images, want) {
		t.Errorf("import: %s, images %+v", res.Manifest.Name, res.Images)
	}
	if !slices.Equal(loaded, []string{files["golden/images/0.tar"], files["golden/images/1.tar"]}) {
		t.Errorf("loaded %q", loaded)
	}
	if _, err := os.Stat(filepath.Join(dst.Path("copy"), imagesDir)); !os.IsNotExist(err) {
		t.Errorf("the imported snapshot keeps its images (%v)", err)
	}

	// Without a loader an archive with images is refused, and a failed
	// load fails the import: no snapshot is added either way.
	if _, err := dst.Import(context.Background(), bytes.NewReader(buf.Bytes()), "noload", ImportOptions{}); err == nil {
		t.Error("an archive with images was imported without loading them")
	}
	failing := func(context.Context, io.Reader) error { return errors.New("no Docker") }
	if _, err := dst.Import(context.Background(), bytes.NewReader(buf.Bytes()), "failed", ImportOptions{LoadImage: failing}); err == nil || !strings.Contains(err.Error(), "no Docker") {
		t.Errorf("import with a failing load: %v", err)
	}
	for _, name := range []string{"noload", "failed"} {
		if _, err := dst.Get(name); err == nil {
			t.Errorf("snapshot %s was added", name)
		}
	}
}

func TestExportImagesFails(t *testing.T) {
	src := imageSnapshot(t)
	failing := func(ctx context.Context, img Image, nodes []string, w io.Writer) (string, error) {
		return "", fmt.Errorf("image %s is neither in Docker nor in a running node", img.Name)
	}
	tmp := t.TempDir()
	err := src.Export(context.Background(), "golden", io.Discard, ExportOptions{SaveImage: failing, TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "neither in Docker") {
		t.Errorf("export with an image nowhere: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// An archive whose images come without an index, or whose index names
// more images than it holds, is refused.
func TestImportImagesRefused(t *testing.T) {
	src := imageSnapshot(t)
	var good bytes.Buffer
	if err := src.Export(context.Background(), "golden", &good, ExportOptions{SaveImage: fakeSaver}); err != nil {
		t.Fatal(err)
	}
	rewrite := func(drop func(name string) bool) *bytes.Buffer {
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		tr := tar.NewReader(bytes.NewReader(good.Bytes()))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if drop(h.Name) {
				continue
			}
			_ = tw.WriteHeader(h)
			_, _ = io.Copy(tw, tr)
		}
		tw.Close()
		return &out
	}
	load := func(ctx context.Context, r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	dst := Store{Dir: filepath.Join(t.TempDir(), "b")}
	for name, archive := range map[string]*bytes.Buffer{
		"no index":      rewrite(func(n string) bool { return strings.HasSuffix(n, "index.json") }),
		"image missing": rewrite(func(n string) bool { return strings.HasSuffix(n, "1.tar") }),
		"no manifest":   rewrite(func(n string) bool { return strings.HasSuffix(n, "manifest.json") }),
	} {
		if _, err := dst.Import(context.Background(), archive, "", ImportOptions{LoadImage: load}); err == nil {
			t.Errorf("%s: imported", name)
		}
	}
}
