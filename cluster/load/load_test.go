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
}

func (n *nodes) WriteFile(_ context.Context, node, dir, name string, size int64, content io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(content, size))
	if err != nil {
		return err
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
	return nil
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
		if len(p.cmds[node]) != 1 || !strings.HasSuffix(p.cmds[node][0], " "+path) || !strings.Contains(p.cmds[node][0], "images import") {
			t.Errorf("node %s ran %q, want one import of %s", node, p.cmds[node], path)
		}
	}
}

func TestArchiveRemovesAPartlyWrittenFile(t *testing.T) {
	p := &nodes{files: map[string][]byte{}, cmds: map[string][]string{}, fullDisk: "b"}
	err := Archive(context.Background(), p, []string{"a", "b"}, strings.NewReader("archive"))
	if err == nil || !strings.Contains(err.Error(), "node b") || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("error %v, want node b's full disk", err)
	}
	if len(p.cmds["b"]) == 0 || !strings.HasPrefix(p.cmds["b"][0], "rm -f "+importDir+"/") {
		t.Errorf("node b ran %q, want the partial file removed", p.cmds["b"])
	}
	if len(p.cmds["a"]) != 1 || !strings.Contains(p.cmds["a"][0], "images import") {
		t.Errorf("node a ran %q, want its import to go on", p.cmds["a"])
	}
}
