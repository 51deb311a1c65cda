package nodeimage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/nodeimage/layer"
)

// A layer is compressed once: the second request for the same content is
// read back from the cache, the same bytes under the same diff ID.
func TestLayerCacheKeepsCompressedLayers(t *testing.T) {
	c := layerCache{dir: t.TempDir()}
	src := func() *layer.Layer {
		l := layer.New()
		l.AddFile("coredns", 0o755, bytes.Repeat([]byte("binary"), 10000))
		return l
	}
	first, err := c.layer(src())
	if err != nil {
		t.Fatal(err)
	}
	cached, _ := filepath.Glob(filepath.Join(c.dir, "*.tar.zst"))
	if len(cached) != 1 || filepath.Base(cached[0]) != first.DiffID.Encoded()+".tar.zst" {
		t.Fatalf("cache holds %v", cached)
	}
	// The file is what was returned, and what a second build reads.
	data, _ := os.ReadFile(cached[0])
	if !bytes.Equal(data, first.Blob()) {
		t.Fatal("the cached layer is not the one returned")
	}
	second, err := c.layer(src())
	if err != nil {
		t.Fatal(err)
	}
	if second.DiffID != first.DiffID || !bytes.Equal(second.Blob(), first.Blob()) {
		t.Error("the cached layer differs from the first")
	}
}
