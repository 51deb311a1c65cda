package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ExportOptions say what an export writes besides the snapshot.
type ExportOptions struct {
	// SaveImage, when set, also writes the images loaded into the
	// snapshot's nodes into the archive (images/, see imagesDir), for a
	// machine that does not have them.
	SaveImage ImageSaver
	// TempDir holds each image while it is written (tar needs its size
	// first); "" is the system's.
	TempDir string
}

// Export writes snapshot name to w as a tar archive of its directory
// (entries under name/), for another machine's berth snapshot import;
// with o.SaveImage its images follow.
func (s Store) Export(ctx context.Context, name string, w io.Writer, o ExportOptions) error {
	m, err := s.Get(name)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	root := s.Path(name)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
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
	if o.SaveImage != nil {
		if err := exportImages(ctx, tw, name, m, o); err != nil {
			return fmt.Errorf("exporting the images of snapshot %q: %w", name, err)
		}
	}
	return tw.Close()
}

// exportImages writes name/images/: the index, then each image of m's
// nodes as a docker-archive.
func exportImages(ctx context.Context, tw *tar.Writer, name string, m *Manifest, o ExportOptions) error {
	images, nodes := snapshotImages(m)
	dir := path.Join(name, imagesDir)
	if err := tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: m.Created}); err != nil {
		return err
	}
	// Each image goes to a temporary file first: a tar entry's size
	// comes before its data, and the index (which says where each came
	// from) before the images.
	index := make([]ArchivedImage, len(images))
	files := make([]*os.File, len(images))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}
	}()
	for i, img := range images {
		f, err := os.CreateTemp(o.TempDir, "berth-image-")
		if err != nil {
			return err
		}
		files[i] = f
		slog.DebugContext(ctx, "exporting image", "image", img.Name)
		source, err := o.SaveImage(ctx, img, nodes[img.Name], f)
		if err != nil {
			return err
		}
		index[i] = ArchivedImage{Name: img.Name, Digest: img.Digest, File: fmt.Sprintf("%d.tar", i), Source: source}
	}
	data, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(tw, path.Join(dir, imagesIndex), m.Created, bytes.NewReader(data), int64(len(data))); err != nil {
		return err
	}
	for i, f := range files {
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := writeFile(tw, path.Join(dir, index[i].File), m.Created, f, size); err != nil {
			return fmt.Errorf("writing %s: %w", index[i].Name, err)
		}
	}
	return nil
}

func writeFile(tw *tar.Writer, name string, mod time.Time, r io.Reader, size int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: size, ModTime: mod}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, r, size)
	return err
}

// ImportOptions say what an import does besides adding the snapshot.
type ImportOptions struct {
	// LoadImage loads the images an archive written with images holds
	// (into the host's Docker). Without it such an archive is refused.
	LoadImage ImageLoader
}

// ImportResult is what an import added.
type ImportResult struct {
	Manifest *Manifest
	// Images are the images loaded (from an archive written with them).
	Images []ArchivedImage
}

// Import reads an archive written by Export into the store, under as (or
// the archive's own name if as is empty). Images the archive holds are
// loaded with o.LoadImage once the snapshot's manifest has been read;
// they are not kept in the store.
func (s Store) Import(ctx context.Context, r io.Reader, as string, o ImportOptions) (*ImportResult, error) {
	tr := tar.NewReader(r)
	var dir, top string
	defer func() {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}()
	res := &ImportResult{}
	var index map[string]ArchivedImage
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
		if rest == imagesDir || strings.HasPrefix(rest, imagesDir+"/") {
			if hdr.Typeflag == tar.TypeDir {
				continue
			}
			if hdr.Typeflag != tar.TypeReg {
				return nil, fmt.Errorf("not a berth snapshot archive: unexpected entry %q", hdr.Name)
			}
			file := strings.TrimPrefix(rest, imagesDir+"/")
			if file == imagesIndex {
				if index, err = readImageIndex(tr, dir, o); err != nil {
					return nil, err
				}
				continue
			}
			img, ok := index[file]
			if !ok {
				return nil, fmt.Errorf("not a berth snapshot archive: %s is not in %s/%s", hdr.Name, imagesDir, imagesIndex)
			}
			slog.DebugContext(ctx, "loading image", "image", img.Name, "from", hdr.Name)
			if err := o.LoadImage(ctx, tr); err != nil {
				return nil, fmt.Errorf("loading image %s from the archive: %w", img.Name, err)
			}
			res.Images = append(res.Images, img)
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
	m, err := readArchivedManifest(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{etcdFile, pkiFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("the snapshot archive lacks %s", f)
		}
	}
	if len(res.Images) != len(index) {
		return nil, fmt.Errorf("the snapshot archive lists %d image(s) in %s/%s but holds %d", len(index), imagesDir, imagesIndex, len(res.Images))
	}
	m.Name = as
	if err := s.commit(dir, m, false); err != nil {
		return nil, err
	}
	dir = ""
	res.Manifest = m
	return res, nil
}

// readArchivedManifest reads the manifest an import wrote into dir.
func readArchivedManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, errors.New("not a berth snapshot archive: it has no manifest.json (before its images)")
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil || m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("not a snapshot this berth reads (format %d, want %d): %v", m.FormatVersion, FormatVersion, err)
	}
	return &m, nil
}

// readImageIndex reads images/index.json, once the snapshot's manifest
// (which comes before the images) has been read and found valid: no
// image is loaded from an archive that is not a snapshot.
func readImageIndex(r io.Reader, dir string, o ImportOptions) (map[string]ArchivedImage, error) {
	if _, err := readArchivedManifest(dir); err != nil {
		return nil, err
	}
	if o.LoadImage == nil {
		return nil, errors.New("the snapshot archive holds images and nothing here loads them")
	}
	var list []ArchivedImage
	if err := json.NewDecoder(io.LimitReader(r, 16<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", imagesDir, imagesIndex, err)
	}
	index := make(map[string]ArchivedImage, len(list))
	for _, img := range list {
		if img.File == "" || strings.Contains(img.File, "/") {
			return nil, fmt.Errorf("%s/%s: image %s in file %q", imagesDir, imagesIndex, img.Name, img.File)
		}
		index[img.File] = img
	}
	return index, nil
}
