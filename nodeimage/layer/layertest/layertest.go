// Package layertest reads tar streams back in tests: layers, image
// archives.
package layertest

import (
	"archive/tar"
	"errors"
	"io"
	"testing"
)

// Entry is one entry of a tar stream.
type Entry struct {
	Header *tar.Header
	Data   []byte
}

// Read returns the entries of the tar stream r, in order.
func Read(t testing.TB, r io.Reader) []Entry {
	t.Helper()
	var out []Entry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", h.Name, err)
		}
		out = append(out, Entry{h, data})
	}
}

// Headers returns the headers of the tar stream r by name.
func Headers(t testing.TB, r io.Reader) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	for _, e := range Read(t, r) {
		out[e.Header.Name] = e.Header
	}
	return out
}

// Files returns the contents of the tar stream r by name.
func Files(t testing.TB, r io.Reader) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, e := range Read(t, r) {
		out[e.Header.Name] = e.Data
	}
	return out
}
