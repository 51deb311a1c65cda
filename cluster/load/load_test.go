package load

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/cluster/provider"
)

// nodes is a provider whose nodes keep the files written into them and
// record the commands run; the methods Archive does not use are nil.
type nodes struct {
	provider.Provider
	mu       sync.Mutex
	files    map[string][]byte // node:path -> content
	cmds     map[string][]string
	fullDisk string // WriteFile into this node fails
	// shared: the nodes mount one volume at provider.SharedDir (a file
	// written there through any node is in every node); otherwise the
	// directory does not exist (a cluster made before it).
	shared bool
}

func (n *nodes) WriteFile(_ context.Context, node, dir, name string, size int64, content io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(content, size))
	if err != nil {
		return err
	}
	if dir == provider.SharedDir {
		if !n.shared {
			return errors.New("Could not find the file " + dir + " in container " + node)
		}
		node = "shared"
	}
	if node == n.fullDisk {
		return errors.New("no space left on device")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.files[node+":"+dir+"/"+name] = data
	return nil
}

func (n *nodes) Exec(_ context.Context, node string, _ io.Reader, _ io.Writer, cmd ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cmds[node] = append(n.cmds[node], strings.Join(cmd, " "))
	if len(cmd) > 4 && cmd[2] == importScript && strings.HasPrefix(cmd[4], provider.SharedDir+"/") {
		if _, ok := n.files["shared:"+cmd[4]]; !ok {
			return &provider.ExecError{Node: node, Cmd: cmd, ExitCode: notShared}
		}
	}
	return nil
}

// imports returns the import commands node ran.
func (n *nodes) imports(node string) []string {
	var out []string
	for _, c := range n.cmds[node] {
		if strings.Contains(c, "images import") {
			out = append(out, c)
		}
	}
	return out
}

func TestArchiveWritesAndImportsInEveryNode(t *testing.T) {
	p := &nodes{files: map[string][]byte{}, cmds: map[string][]string{}}
	archive := bytes.Repeat([]byte("layer"), 100000)
	if err := Archive(context.Background(), p, []string{"a", "b", "c"}, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if len(p.files) != 3 {
		t.Fatalf("files written: %d, want one per node", len(p.files))
	}
	for key, data := range p.files {
		node, path, _ := strings.Cut(key, ":")
		if !bytes.Equal(data, archive) {
			t.Errorf("node %s got %d bytes, want the %d of the archive", node, len(data), len(archive))
		}
		if imp := p.imports(node); len(imp) != 1 || !strings.HasSuffix(imp[0], " "+path) {
			t.Errorf("node %s ran %q, want one import of %s", node, p.cmds[node], path)
		}
	}
}

func TestArchiveSharedVolumeOneCopyForEveryNode(t *testing.T) {
	p := &nodes{files: map[string][]byte{}, cmds: map[string][]string{}, shared: true}
	archive := bytes.Repeat([]byte("layer"), 100000)
	if err := Archive(context.Background(), p, []string{"a", "b", "c"}, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if len(p.files) != 1 {
		t.Fatalf("files written: %v, want the one copy in the shared volume", len(p.files))
	}
	var path string
	for key, data := range p.files {
		where, file, _ := strings.Cut(key, ":")
		if where != "shared" || !bytes.Equal(data, archive) {
			t.Fatalf("wrote %d bytes to %s, want the archive in the shared volume", len(data), key)
		}
		path = file
	}
	for _, node := range []string{"a", "b", "c"} {
		if imp := p.imports(node); len(imp) != 1 || !strings.HasSuffix(imp[0], " "+path+" shared") {
			t.Errorf("node %s ran %q, want one import of the shared %s", node, p.cmds[node], path)
		}
	}
	if last := p.cmds["a"][len(p.cmds["a"])-1]; last != "rm -f "+path {
		t.Errorf("node a's last command %q, want the shared copy removed", last)
	}
}

func TestArchiveRemovesAPartlyWrittenFile(t *testing.T) {
	p := &nodes{files: map[string][]byte{}, cmds: map[string][]string{}, fullDisk: "b"}
	err := Archive(context.Background(), p, []string{"a", "b"}, strings.NewReader("archive"))
	if err == nil || !strings.Contains(err.Error(), "node b") || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("error %v, want node b's full disk", err)
	}
	removed := false
	for _, c := range p.cmds["b"] {
		removed = removed || strings.HasPrefix(c, "rm -f "+importDir+"/")
	}
	if !removed {
		t.Errorf("node b ran %q, want the partial file removed", p.cmds["b"])
	}
	if len(p.imports("a")) != 1 {
		t.Errorf("node a ran %q, want its import to go on", p.cmds["a"])
	}
}
