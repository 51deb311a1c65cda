// Package layer writes container image layers: tar streams that are the
// same bytes for the same inputs. Entries are written in name order, every
// modification time is Epoch, owner names are dropped (numeric owners
// stay), and extended attributes — file capabilities among them — are
// kept as PAX records (SCHILY.xattr.<name>), which Docker and containerd
// both apply when they unpack a layer.
//
// A Layer is built in memory as a set of entries (what it holds, not the
// bytes of regular files read from disk) and written once with WriteTo.
package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Epoch is the modification time of every entry (in the manner of
// SOURCE_DATE_EPOCH, but fixed), and the creation time of the images
// berth assembles: the time of day a build ran never reaches its output.
var Epoch = time.Unix(0, 0).UTC()

// xattrPrefix is the PAX record prefix GNU tar, Docker and containerd use
// for extended attributes.
const xattrPrefix = "SCHILY.xattr."

// Entry is one file, directory or link of a layer.
type Entry struct {
	// Name is the slash-separated path inside the layer, without a
	// leading or trailing slash.
	Name string
	// Type is tar.TypeReg, tar.TypeDir, tar.TypeSymlink or tar.TypeLink.
	Type byte
	// Mode holds the permission bits, setuid, setgid and sticky
	// included (0o4755).
	Mode     int64
	Uid, Gid int
	// Linkname is a symbolic link's target, or the Name of the entry a
	// hard link shares its content with.
	Linkname string
	// Xattrs are extended attributes ("security.capability", "user.x").
	Xattrs map[string]string
	// Data is a regular file's content, unless Source is set.
	Data []byte
	// Source is the file a regular file's content is read from when the
	// layer is written; Size is its size.
	Source string
	Size   int64

	// inode groups the hard links of a tree: the first of a group in
	// name order is written as the file, the others as links to it.
	inode [2]uint64
}

// Layer is a set of entries, keyed by name.
type Layer struct {
	entries map[string]*Entry
}

// New returns an empty layer.
func New() *Layer { return &Layer{entries: map[string]*Entry{}} }

// Len is the number of entries added (parent directories written
// implicitly not counted).
func (l *Layer) Len() int { return len(l.entries) }

// Add adds e, replacing an entry of the same name.
func (l *Layer) Add(e Entry) {
	e.Name = clean(e.Name)
	if e.Name == "" {
		return
	}
	l.entries[e.Name] = &e
}

// clean turns a path into an entry name: slash-separated, relative,
// without a trailing slash ("" for the root).
func clean(name string) string {
	name = path.Clean("/" + filepath.ToSlash(name))
	return strings.TrimPrefix(name, "/")
}

// AddFile adds a regular file owned by root.
func (l *Layer) AddFile(name string, mode int64, data []byte) {
	l.Add(Entry{Name: name, Type: tar.TypeReg, Mode: mode, Data: data, Size: int64(len(data))})
}

// AddDir adds a directory owned by root.
func (l *Layer) AddDir(name string, mode int64) {
	l.Add(Entry{Name: name, Type: tar.TypeDir, Mode: mode})
}

// AddSymlink adds a symbolic link to target.
func (l *Layer) AddSymlink(name, target string) {
	l.Add(Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target})
}

// AddFileFrom adds the regular file src as name, owned by root with mode
// (the file's own permission bits when mode is negative) and src's
// extended attributes. Its content is read when the layer is written.
func (l *Layer) AddFileFrom(name, src string, mode int64) error {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if mode < 0 {
		mode = int64(st.Mode & 0o7777)
	}
	xattrs, err := Xattrs(src)
	if err != nil {
		return err
	}
	l.Add(Entry{Name: name, Type: tar.TypeReg, Mode: mode, Source: src, Size: st.Size, Xattrs: xattrs})
	return nil
}

// AddTree adds the tree under root below prefix ("" for the layer's
// root), keeping numeric owners, modes, symbolic and hard links and
// extended attributes. Device nodes, FIFOs and sockets are left out: the
// engine makes its own. skip, when not nil, leaves out the paths
// (relative to root, slash-separated) it returns true for, and everything
// under a directory it leaves out.
func (l *Layer) AddTree(root, prefix string, skip func(rel string) bool) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e, err := entryOf(p)
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		e.Name = path.Join(prefix, rel)
		l.Add(*e)
		return nil
	})
}

// StripXattrs drops every entry's extended attributes, for a layer that
// must hold what a plain `tar -c` of the same tree held.
func (l *Layer) StripXattrs() {
	for _, e := range l.entries {
		e.Xattrs = nil
	}
}

// entryOf describes the file at p as an entry (nil for the kinds a layer
// leaves out).
func entryOf(p string) (*Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	e := &Entry{Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type, e.Source, e.Size = tar.TypeReg, p, st.Size
		if st.Nlink > 1 {
			e.inode = [2]uint64{uint64(st.Dev), st.Ino}
		}
	case unix.S_IFDIR:
		e.Type = tar.TypeDir
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		e.Type, e.Linkname = tar.TypeSymlink, target
	default:
		return nil, nil
	}
	xattrs, err := Xattrs(p)
	if err != nil {
		return nil, err
	}
	e.Xattrs = xattrs
	return e, nil
}

// ignoredXattr reports attributes a layer must not carry: the build
// host's SELinux labels and overlayfs' own bookkeeping.
func ignoredXattr(name string) bool {
	return name == "security.selinux" || strings.HasPrefix(name, "trusted.overlay.")
}

// Xattrs reads the extended attributes of p (not following a symbolic
// link). A file system without them gives none.
func Xattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		return nil, &fs.PathError{Op: "llistxattr", Path: p, Err: err}
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return nil, &fs.PathError{Op: "llistxattr", Path: p, Err: err}
	}
	var out map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || ignoredXattr(name) {
			continue
		}
		value, err := lgetxattr(p, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(value)
	}
	return out, nil
}

func lgetxattr(p, name string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew since it was measured
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// sorted returns the entries in name order, with a directory entry
// (0755, root) for every parent no entry names.
func (l *Layer) sorted() []*Entry {
	all := make([]*Entry, 0, len(l.entries))
	implicit := map[string]bool{}
	for name, e := range l.entries {
		all = append(all, e)
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := l.entries[dir]; ok || implicit[dir] {
				continue
			}
			implicit[dir] = true
			all = append(all, &Entry{Name: dir, Type: tar.TypeDir, Mode: 0o755})
		}
	}
	// A parent's name is a prefix of its children's, so it sorts
	// before them.
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// WriteTo writes the layer as an uncompressed tar stream.
func (l *Layer) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	firstLink := map[[2]uint64]string{}
	for _, e := range l.sorted() {
		hdr := &tar.Header{
			Typeflag: e.Type,
			Name:     e.Name,
			Linkname: e.Linkname,
			Mode:     e.Mode,
			Uid:      e.Uid,
			Gid:      e.Gid,
			ModTime:  Epoch,
		}
		if e.Type == tar.TypeDir {
			hdr.Name += "/"
		}
		if len(e.Xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				hdr.PAXRecords[xattrPrefix+k] = v
			}
		}
		if e.Type == tar.TypeReg {
			if e.inode != ([2]uint64{}) {
				if first, ok := firstLink[e.inode]; ok {
					hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
					if err := tw.WriteHeader(hdr); err != nil {
						return cw.n, err
					}
					continue
				}
				firstLink[e.inode] = e.Name
			}
			hdr.Size = e.Size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return cw.n, fmt.Errorf("writing %s: %w", e.Name, err)
		}
		if e.Type != tar.TypeReg {
			continue
		}
		if err := writeContent(tw, e); err != nil {
			return cw.n, fmt.Errorf("writing %s: %w", e.Name, err)
		}
	}
	err := tw.Close()
	return cw.n, err
}

func writeContent(tw *tar.Writer, e *Entry) error {
	if e.Source == "" {
		_, err := tw.Write(e.Data)
		return err
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyN(tw, f, e.Size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s shrank to %d bytes while being packed", e.Source, n)
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
