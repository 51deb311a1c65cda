package nodeimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/nodeimage/layer/layertest"
	"github.com/berth-dev/berth/nodeimage/ociarchive"
)

func TestRegistryImage(t *testing.T) {
	img, err := registryImage("berth/registry:test", "r1", []byte("binary"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ociarchive.WriteArchive(&buf, ociarchive.Options{Docker: true}, img); err != nil {
		t.Fatal(err)
	}
	files := layertest.Files(t, bytes.NewReader(buf.Bytes()))
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || manifest[0].RepoTags[0] != "berth/registry:test" || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json = %s", files["manifest.json"])
	}
	var config v1.Image
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatal(err)
	}
	c := config.Config
	if strings.Join(c.Entrypoint, " ") != "/bin/registry" || strings.Join(c.Cmd, " ") != "serve "+RegistryConfigPath ||
		c.Labels[LabelRegistryRecipe] != "r1" || len(c.ExposedPorts) != 1 {
		t.Errorf("config = %s", files[manifest[0].Config])
	}
	var rd io.Reader = bytes.NewReader(files[manifest[0].Layers[0]])
	if zr, err := gzip.NewReader(bytes.NewReader(files[manifest[0].Layers[0]])); err == nil {
		rd = zr
	}
	h := layertest.Headers(t, rd)
	for name, mode := range map[string]int64{"bin/registry": 0o755, "etc/distribution/config.yml": 0o644, "tmp/": 0o1777, "var/lib/registry/": 0o755} {
		if h[name] == nil || h[name].Mode&0o7777 != mode {
			t.Errorf("%s: %+v, want mode %o", name, h[name], mode)
		}
	}
}

func TestRegistryConfig(t *testing.T) {
	for _, want := range []string{"rootdirectory: /var/lib/registry", "addr: :5000", "delete:\n    enabled: true"} {
		if !strings.Contains(registryConfig, want) {
			t.Errorf("the registry's configuration lacks %q:\n%s", want, registryConfig)
		}
	}
	if got := registryGoMod(); !strings.Contains(got, "require github.com/distribution/distribution/v3 "+RegistryVersion) {
		t.Errorf("go.mod:\n%s", got)
	}
	if RegistryRecipe() != RegistryRecipe() || len(RegistryRecipe()) != 16 {
		t.Errorf("recipe %q", RegistryRecipe())
	}
}

// labelledStore has an image labelled with a recipe and fails any load.
type labelledStore struct{ recipe string }

func (s labelledStore) ImageLabels(context.Context, string) (map[string]string, bool, error) {
	return map[string]string{LabelRegistryRecipe: s.recipe}, true, nil
}

func (s labelledStore) LoadImage(context.Context, io.Reader) error {
	panic("an up-to-date image was loaded again")
}

func TestBuildRegistrySkipsAnUpToDateImage(t *testing.T) {
	res, err := BuildRegistry(context.Background(), labelledStore{RegistryRecipe()}, RegistryOptions{CacheDir: t.TempDir()})
	if err != nil || !res.Skipped || res.Image != RegistryImage {
		t.Errorf("result %+v, err %v", res, err)
	}
}
