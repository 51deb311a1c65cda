package snapshot

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Export writes snapshot name to w as a tar archive of its directory
// (entries under name/), for another machine's berth snapshot import.
func (s Store) Export(name string, w io.Writer) error {
	if _, err := s.Get(name); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	root := s.Path(name)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = path.Join(name, filepath.ToSlash(rel))
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("exporting snapshot %q: %w", name, err)
	}
	return tw.Close()
}

// Import reads an archive written by Export into the store, under as (or
// the archive's own name if as is empty), and returns its manifest.
func (s Store) Import(r io.Reader, as string) (*Manifest, error) {
	tr := tar.NewReader(r)
	var dir, top string
	defer func() {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the snapshot archive: %w", err)
		}
		clean := path.Clean(hdr.Name)
		first, rest, _ := strings.Cut(clean, "/")
		if top == "" {
			top = first
			if err := ValidateName(top); err != nil {
				return nil, fmt.Errorf("not a berth snapshot archive: %w", err)
			}
			if as == "" {
				as = top
			}
			if err := ValidateName(as); err != nil {
				return nil, err
			}
			if _, err := os.Stat(s.Path(as)); err == nil {
				return nil, fmt.Errorf("snapshot %q exists (delete it first, or import with --as NAME)", as)
			}
			if dir, err = s.begin(as); err != nil {
				return nil, err
			}
		}
		// Only plain files and directories inside the snapshot's own
		// directory: an archive cannot write anywhere else.
		if first != top || path.IsAbs(hdr.Name) || strings.HasPrefix(rest, "..") || strings.Contains(clean, "/../") {
			return nil, fmt.Errorf("not a berth snapshot archive: unexpected entry %q", hdr.Name)
		}
		if rest == "" {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rest))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return nil, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return nil, err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("writing %s: %w", rest, err)
			}
		default:
			return nil, fmt.Errorf("not a berth snapshot archive: unexpected entry %q", hdr.Name)
		}
	}
	if dir == "" {
		return nil, errors.New("not a berth snapshot archive: it is empty")
	}
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, errors.New("not a berth snapshot archive: it has no manifest.json")
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil || m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("not a snapshot this berth reads (format %d, want %d): %v", m.FormatVersion, FormatVersion, err)
	}
	for _, f := range []string{etcdFile, pkiFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("the snapshot archive lacks %s", f)
		}
	}
	m.Name = as
	if err := s.commit(dir, &m, false); err != nil {
		return nil, err
	}
	dir = ""
	return &m, nil
}
