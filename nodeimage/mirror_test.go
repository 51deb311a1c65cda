package nodeimage

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMirrorFromAptSources(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	deb822 := `Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://mirror.invalid/debian/
Suites: bookworm bookworm-updates
Components: main
`
	if err := os.WriteFile(filepath.Join(dir, "debian.sources"), []byte(deb822), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := MirrorFromAptSources(root)
	if err != nil {
		t.Fatal(err)
	}
	if got != "http://mirror.invalid/debian" {
		t.Errorf("mirror = %q", got)
	}
}

func TestMirrorFromSourcesList(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/apt"), 0o755); err != nil {
		t.Fatal(err)
	}
	list := "# deb http://old.invalid/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://list.invalid/debian bookworm main\n"
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := MirrorFromAptSources(root); got != "http://list.invalid/debian" {
		t.Errorf("mirror = %q", got)
	}
	if _, err := MirrorFromAptSources(t.TempDir()); err == nil {
		t.Error("no sources gave no error")
	}
}
