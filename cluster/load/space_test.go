package load

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/cluster/provider"
)

// ctrContentLs is `ctr -n k8s.io content ls` as a node prints it.
const ctrContentLs = `DIGEST									SIZE	AGE		LABELS
sha256:1de3adaad50d1387cbc5df55b523ba95fb7aeeb985c51cee399a12185ffb9e84	1.536kB	5 minutes	containerd.io/gc.ref.content.config=sha256:aaa
sha256:aaaa000000000000000000000000000000000000000000000000000000000001	205.3MB	5 minutes	containerd.io/uncompressed=sha256:aaaa
sha256:aaaa000000000000000000000000000000000000000000000000000000000002	93B	5 minutes	-
`

func TestParseSpace(t *testing.T) {
	s, err := parseSpace("58624 4096\n" + ctrContentLs)
	if err != nil {
		t.Fatal(err)
	}
	if s.free != 58624*4096 {
		t.Errorf("free = %d", s.free)
	}
	want := map[string]int64{
		"sha256:1de3adaad50d1387cbc5df55b523ba95fb7aeeb985c51cee399a12185ffb9e84": 1536,
		"sha256:aaaa000000000000000000000000000000000000000000000000000000000001": 205_300_000,
		"sha256:aaaa000000000000000000000000000000000000000000000000000000000002": 93,
	}
	if len(s.blobs) != len(want) {
		t.Errorf("blobs = %v", s.blobs)
	}
	for d, n := range want {
		if s.blobs[d] != n {
			t.Errorf("blob %s: %d, want %d", d, s.blobs[d], n)
		}
	}
	for _, bad := range []string{"", "x 4096\n", "1 2 3\n"} {
		if _, err := parseSpace(bad); err == nil {
			t.Errorf("parseSpace(%q) succeeded", bad)
		}
	}
}

func TestParseHumanSize(t *testing.T) {
	for in, want := range map[string]int64{"93B": 93, "1.024kB": 1024, "205.3MB": 205_300_000, "1.2GB": 1_200_000_000, "4KiB": 4096, "1.5MiB": 1572864} {
		if got, err := parseHumanSize(in); err != nil || got != want {
			t.Errorf("parseHumanSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MB", "12", "12XB", "1.2.3MB"} {
		if _, err := parseHumanSize(bad); err == nil {
			t.Errorf("parseHumanSize(%q) succeeded", bad)
		}
	}
}

func TestLacking(t *testing.T) {
	a := provider.ImageInfo{Size: 300, Layers: []string{"sha256:base", "sha256:a"}}
	b := provider.ImageInfo{Size: 250, Layers: []string{"sha256:base", "sha256:b"}}
	if got := lacking([]provider.ImageInfo{a, b}, nil); got != 300 {
		t.Errorf("nothing held: %d, want the largest image (300): images may share layers", got)
	}
	if got := lacking([]provider.ImageInfo{a, b}, map[string]int64{"sha256:base": 200}); got != 100 {
		t.Errorf("base held: %d, want 100", got)
	}
	// A layer archive is a little larger than its files: never below 0.
	if got := lacking([]provider.ImageInfo{a}, map[string]int64{"sha256:base": 200, "sha256:a": 120}); got > 0 {
		t.Errorf("every layer held: %d, want <= 0", got)
	}
}

func TestImportLeases(t *testing.T) {
	out := `ID                                                               CREATED AT           LABELS
525016946ebbe633d904bc06af245f9fb14f9be209fca4e8a561f98f4b26f62f 2026-11-30T22:11:53Z -
c58c304adaddfb8154685b5a2fea2d96eba296c87f393ed251b0512219d3a133 2026-11-30T22:13:47Z -
old-import                                                       2026-11-30T22:11:00Z containerd.io/gc.expire=2026-12-01T22:11:00Z
this-import                                                      2026-11-30T22:13:46Z containerd.io/gc.expire=2026-12-01T22:13:46Z
`
	since := time.Date(2026, 11, 30, 22, 13, 46, 700e6, time.UTC)
	got := importLeases(out, since)
	if len(got) != 1 || got[0] != "this-import" {
		t.Errorf("importLeases = %v, want [this-import] (CRI leases have no expiry; old-import predates the load)", got)
	}
}

func TestCtrError(t *testing.T) {
	stderr := `time="2026-11-30T22:12:25Z" level=warning msg="DEPRECATION: The support for cgroup v1 is deprecated"
ctr: failed to extract layer (sha256:63c8): write /var/lib/containerd/tmpmounts/m/usr/bin/last: no space left on device
`
	if got, want := ctrError(stderr), "containerd: failed to extract layer: no space left on device"; got != want {
		t.Errorf("ctrError = %q, want %q", got, want)
	}
	ingest := `ctr: failed to ingest "c7d8/layer.tar": failed to copy: write /var/lib/containerd/io.containerd.content.v1.content/ingest/e6a7/data: no space left on device`
	if got, want := ctrError(ingest), `containerd: failed to ingest "c7d8/layer.tar": no space left on device`; got != want {
		t.Errorf("ctrError = %q, want %q", got, want)
	}
	quoted := `ctr: failed to ingest "sha256:c7d8": write /x: no space left on device`
	if got, want := ctrError(quoted), `containerd: failed to ingest "sha256:c7d8": no space left on device`; got != want {
		t.Errorf("ctrError = %q, want %q", got, want)
	}
	if got, want := ctrError("ctr: unexpected EOF"), "containerd: unexpected EOF"; got != want {
		t.Errorf("ctrError = %q, want %q", got, want)
	}
	if got := ctrError("time=x level=warning msg=y\n"); got == "" {
		t.Error("empty message for a failure without one")
	}
}

// spaceNode fakes a node's containerd: its free space, what a load takes
// of it, and what a failed one leaves until its lease is deleted.
type spaceNode struct {
	free     int64
	fail     bool // the import runs out of space
	leftover int64
	leases   string
	deleted  []string
	// garbage is what containerd collects in the background after a
	// failed import; collected: a collection was asked for.
	garbage   int64
	collected bool
}

type spaceProvider struct {
	provider.Provider
	mu    sync.Mutex
	nodes map[string]*spaceNode
	image provider.ImageInfo
	// written counts archives written into nodes.
	written int
}

func (p *spaceProvider) ImageInfo(context.Context, string) (*provider.ImageInfo, error) {
	img := p.image
	return &img, nil
}

func (p *spaceProvider) SaveImages(context.Context, []string) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(strings.Repeat("x", 1<<16))), nil
}

func (p *spaceProvider) WriteFile(_ context.Context, node, dir, name string, size int64, content io.Reader) error {
	p.mu.Lock()
	p.written++
	p.mu.Unlock()
	_, err := io.Copy(io.Discard, io.LimitReader(content, size))
	return err
}

func (p *spaceProvider) Exec(_ context.Context, node string, stdin io.Reader, stdout io.Writer, cmd ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.nodes[node]
	script := strings.Join(cmd, " ")
	switch {
	case strings.Contains(script, hasImageScript):
		return &provider.ExecError{Node: node, Cmd: cmd, ExitCode: 1}
	case strings.Contains(script, spaceScript):
		_, err := io.WriteString(stdout, strconv.FormatInt(n.free/4096, 10)+" 4096\n"+ctrContentLs)
		return err
	case strings.Contains(script, leaseScript):
		_, err := io.WriteString(stdout, n.leases)
		return err
	case strings.Contains(script, gcScript):
		n.collected = true
		n.free += n.garbage
		n.garbage = 0
		return nil
	case strings.HasPrefix(script, "ctr -n k8s.io leases delete --sync"):
		n.deleted = cmd[6:]
		n.free += n.leftover
		n.leftover = 0
		return nil
	case strings.Contains(script, importScript):
		if n.fail {
			n.free -= n.leftover + n.garbage
			return &provider.ExecError{Node: node, Cmd: cmd, ExitCode: 1, Stderr: "time=\"x\" level=warning msg=\"DEPRECATION\"\nctr: failed to ingest \"x/layer.tar\": failed to copy: write /var/lib/containerd/io.containerd.content.v1.content/ingest/1/data: no space left on device"}
		}
		return nil
	}
	return errors.New("unexpected command " + script)
}

func TestImagesRefusesANodeWithoutSpace(t *testing.T) {
	p := &spaceProvider{
		image: provider.ImageInfo{ID: "sha256:img", Size: 205_000_000, Layers: []string{"sha256:l1"}},
		nodes: map[string]*spaceNode{"big": {free: 1 << 30}, "small": {free: 100 << 20}},
	}
	_, err := Images(context.Background(), p, []string{"big", "small"}, []string{"agnhost:2.55"})
	var ns *NoSpaceError
	if !errors.As(err, &ns) || ns.Node != "small" {
		t.Fatalf("err = %v, want a NoSpaceError for node small", err)
	}
	if p.written > 0 {
		t.Errorf("the images were written into %d node(s) although a node cannot take them", p.written)
	}
	for _, want := range []string{"node small has 105 MB free on its /var, too little for agnhost:2.55", "at least 205 MB", "about 615 MB", "nothing was loaded", "--nodes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestImagesOutOfSpaceLeavesTheNodeAsBefore(t *testing.T) {
	now := time.Now().UTC()
	cri := "cri " + now.Add(-time.Minute).Format(time.RFC3339) + " -\n"
	imp := "imp " + now.Add(time.Second).Format(time.RFC3339) + " " + gcExpire + "x\n"
	for _, tc := range []struct {
		name      string
		leases    string
		leftover  int64 // what containerd did not remove by itself
		garbage   int64 // what it removes in the background
		want      string
		deleted   []string
		collected bool
	}{
		{"containerd cleaned up", cri, 0, 150 << 20, "containerd removed what the failed load wrote; the node is as before", nil, true},
		{"containerd died mid-import", cri + imp, 150 << 20, 0, "berth removed what the failed load wrote (containerd lease imp); the node is as before", []string{"imp"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &spaceNode{free: 300 << 20, fail: true, leftover: tc.leftover, garbage: tc.garbage, leases: "ID CREATED AT LABELS\n" + tc.leases}
			p := &spaceProvider{
				image: provider.ImageInfo{ID: "sha256:img", Size: 205_000_000, Layers: []string{"sha256:l1"}},
				nodes: map[string]*spaceNode{"n1": n},
			}
			_, err := Images(context.Background(), p, []string{"n1"}, []string{"agnhost:2.55"})
			var ns *NoSpaceError
			if !errors.As(err, &ns) {
				t.Fatalf("err = %v, want a NoSpaceError", err)
			}
			for _, want := range []string{"node n1 ran out of space loading agnhost:2.55", `(containerd: failed to ingest "x/layer.tar": no space left on device)`, "315 MB is free", "it needs about 615 MB there while loading", tc.want, "--nodes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "DEPRECATION") || strings.Contains(err.Error(), "sh -c") {
				t.Errorf("error carries noise: %v", err)
			}
			if !slices.Equal(n.deleted, tc.deleted) {
				t.Errorf("deleted leases %v, want %v", n.deleted, tc.deleted)
			}
			if n.collected != tc.collected {
				t.Errorf("a collection was asked for: %v, want %v", n.collected, tc.collected)
			}
		})
	}
}

func TestNoSpaceErrorKeptLease(t *testing.T) {
	e := &NoSpaceError{Node: "n1", Images: []string{"a"}, Import: "containerd: x: " + noSpace, Free: -1,
		Cleanup: cleanup{Kept: []string{"imp"}, Err: errors.New("refused")}}
	for _, want := range []string{"still held by containerd lease imp (refused)", "ctr -n k8s.io leases delete --sync imp"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("error lacks %q: %v", want, e)
		}
	}
	if strings.Contains(e.Error(), "is free") {
		t.Errorf("error claims a free space it does not know: %v", e)
	}
}

func TestArchiveOutOfSpace(t *testing.T) {
	n := &spaceNode{free: 300 << 20, fail: true, leases: "ID CREATED AT LABELS\n"}
	p := &spaceProvider{nodes: map[string]*spaceNode{"n1": n}}
	err := Archive(context.Background(), p, []string{"n1"}, strings.NewReader("archive"))
	var ns *NoSpaceError
	if !errors.As(err, &ns) || ns.Need != 0 {
		t.Fatalf("err = %v, want a NoSpaceError without a need", err)
	}
	if !strings.Contains(err.Error(), "node n1 ran out of space loading the archive") || strings.Contains(err.Error(), "needs") {
		t.Errorf("error: %v", err)
	}
}

func TestImagesSaysWhichNodesGotThem(t *testing.T) {
	p := &spaceProvider{
		image: provider.ImageInfo{ID: "sha256:img", Size: 205_000_000, Layers: []string{"sha256:l1"}},
		nodes: map[string]*spaceNode{"cp": {free: 1 << 30}, "w": {free: 300 << 20, fail: true}},
	}
	_, err := Images(context.Background(), p, []string{"cp", "w"}, []string{"a:1"})
	var ns *NoSpaceError
	if !errors.As(err, &ns) || ns.Node != "w" {
		t.Fatalf("err = %v, want a NoSpaceError for w", err)
	}
	if !strings.HasSuffix(err.Error(), "(loaded into cp)") {
		t.Errorf("the error does not say which node has the images: %v", err)
	}
}
