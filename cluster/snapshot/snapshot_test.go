package snapshot

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var layoutA = []Node{{Name: "a-control-plane", Role: "control-plane"}, {Name: "a-worker", Role: "worker"}}

func manifest(name string) *Manifest {
	return &Manifest{FormatVersion: FormatVersion, Name: name, Cluster: "a", KubernetesVersion: "v1.37.2",
		CAFingerprint: "sha256:ca", Nodes: layoutA, Created: time.Now()}
}

func TestCompatible(t *testing.T) {
	m := manifest("s")
	if err := Compatible(m, "v1.37.2", layoutA, "sha256:ca", nil); err != nil {
		t.Errorf("same cluster refused: %v", err)
	}
	cases := []struct {
		name, version, ca, want string
		nodes                   []Node
	}{
		{"other version", "v1.36.3", "sha256:ca", "taken on Kubernetes v1.37.2", layoutA},
		{"fewer nodes", "v1.37.2", "sha256:ca", "same node layout", layoutA[:1]},
		{"other role", "v1.37.2", "sha256:ca", "same node layout", []Node{{Name: "a-control-plane", Role: "control-plane"}, {Name: "a-worker", Role: "control-plane"}}},
		{"other names", "v1.37.2", "sha256:ca", "same node layout", []Node{{Name: "b-control-plane", Role: "control-plane"}, {Name: "b-worker", Role: "worker"}}},
		{"other CA", "v1.37.2", "sha256:other", "certificate authority differs", layoutA},
	}
	for _, c := range cases {
		err := Compatible(m, c.version, c.nodes, c.ca, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error about %q", c.name, err, c.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"golden", "a", "before-upgrade.1", "x_y"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".hidden", "../x", "a/b", "Upper", "-x", "x-", strings.Repeat("a", 65)} {
		if ValidateName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Snapshots are committed whole, private, listed oldest first, and
// neither overwritten by accident nor seen while written.
func TestStore(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "snapshots")}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("empty store: %v, %v", list, err)
	}
	commit := func(m *Manifest, replace bool) error {
		dir, err := s.begin(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		return s.commit(dir, m, replace)
	}
	older, newer := manifest("b-old"), manifest("a-new")
	older.Created = newer.Created.Add(-time.Hour)
	if err := commit(newer, false); err != nil {
		t.Fatal(err)
	}
	if err := commit(older, false); err != nil {
		t.Fatal(err)
	}
	if err := commit(manifest("a-new"), false); err == nil {
		t.Error("an existing snapshot was overwritten without replace")
	}
	if err := commit(manifest("a-new"), true); err != nil {
		t.Errorf("replace: %v", err)
	}
	// A snapshot being written is not listed.
	if _, err := s.begin("c-partial"); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{"b-old", "a-new"}) {
		t.Errorf("list = %v, want [b-old a-new]", names)
	}
	for _, p := range []string{s.Dir, s.Path("a-new"), filepath.Join(s.Path("a-new"), manifestFile)} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by others", p, st.Mode().Perm())
		}
	}
	if err := s.Delete("b-old"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("b-old"); err == nil {
		t.Error("deleted snapshot still readable")
	}
	if err := s.Delete("nope"); err == nil {
		t.Error("deleting a missing snapshot succeeded")
	}
}

func TestParseImageList(t *testing.T) {
	out := `REF                                      TYPE                                       DIGEST          SIZE    PLATFORMS   LABELS
docker.io/library/hello:e2e              application/vnd.docker.distribution.manifest.v2+json sha256:aaa 1.0 MiB linux/amd64 io.cri-containerd.image=managed
registry.k8s.io/pause:3.10.2             application/vnd.oci.image.manifest.v1+json sha256:bbb 300 KiB linux/amd64 io.cri-containerd.image=managed
docker.io/library/hello@sha256:aaa       application/vnd.docker.distribution.manifest.v2+json sha256:aaa 1.0 MiB linux/amd64 io.cri-containerd.image=managed
sha256:ccc                               application/vnd.docker.distribution.manifest.v2+json sha256:aaa 1.0 MiB linux/amd64 io.cri-containerd.image=managed
`
	got := parseImageList(out, map[string]bool{"registry.k8s.io/pause:3.10.2": true})
	if len(got) != 1 || got[0] != (Image{Name: "docker.io/library/hello:e2e", Digest: "sha256:aaa"}) {
		t.Errorf("images = %+v", got)
	}
}

func TestTopLevel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, name := range []string{"./", "./pvc-1_default_data/", "./pvc-1_default_data/f", "./pvc-2_ns_x/", "./pvc-2_ns_x/sub/g"} {
		typ := byte(tar.TypeReg)
		if strings.HasSuffix(name, "/") {
			typ = tar.TypeDir
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	f.Close()
	got, err := topLevel(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"pvc-1_default_data", "pvc-2_ns_x"}) {
		t.Errorf("top level = %v", got)
	}
}

func TestExportImport(t *testing.T) {
	src := Store{Dir: filepath.Join(t.TempDir(), "a")}
	dir, err := src.begin("golden")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{etcdFile: "etcd", pkiFile: "pki", "volumes/n.tar": "vol"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.commit(dir, manifest("golden"), false); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "golden.tar")
	f, _ := os.Create(archive)
	if err := src.Export(context.Background(), "golden", f, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dst := Store{Dir: filepath.Join(t.TempDir(), "b")}
	for _, as := range []string{"", "copy"} {
		f, _ := os.Open(archive)
		res, err := dst.Import(context.Background(), f, as, ImportOptions{})
		f.Close()
		if err != nil {
			t.Fatalf("import as %q: %v", as, err)
		}
		m := res.Manifest
		want := as
		if want == "" {
			want = "golden"
		}
		if m.Name != want {
			t.Errorf("imported as %q, want %q", m.Name, want)
		}
		data, err := os.ReadFile(filepath.Join(dst.Path(want), "volumes", "n.tar"))
		if err != nil || string(data) != "vol" {
			t.Errorf("volume archive after import: %q, %v", data, err)
		}
	}
	f, _ = os.Open(archive)
	if _, err := dst.Import(context.Background(), f, "", ImportOptions{}); err == nil {
		t.Error("an import over an existing snapshot succeeded")
	}
	f.Close()

	// An archive that writes outside its directory is refused.
	evil := filepath.Join(t.TempDir(), "evil.tar")
	ef, _ := os.Create(evil)
	tw := tar.NewWriter(ef)
	_ = tw.WriteHeader(&tar.Header{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o700})
	_ = tw.WriteHeader(&tar.Header{Name: "x/../../escape", Typeflag: tar.TypeReg, Mode: 0o600})
	tw.Close()
	ef.Close()
	ef, _ = os.Open(evil)
	defer ef.Close()
	if _, err := dst.Import(context.Background(), ef, "", ImportOptions{}); err == nil {
		t.Error("an archive with ../ was imported")
	}
	if _, err := os.Stat(filepath.Join(dst.Dir, "..", "escape")); err == nil {
		t.Error("the archive wrote outside the store")
	}
}
