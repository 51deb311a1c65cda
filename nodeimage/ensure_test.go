package nodeimage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
	"github.com/berth-dev/berth/nodeimage/versions"
)

// fakeEngine is an image store whose pulls are scripted.
type fakeEngine struct {
	images map[string]map[string]string
	// pull decides a pull's outcome; nil refuses every pull.
	pull   func(ctx context.Context, ref string, out io.Writer) error
	pulled []string
	tagged []string
}

func (f *fakeEngine) ImageLabels(_ context.Context, ref string) (map[string]string, bool, error) {
	l, ok := f.images[ref]
	return l, ok, nil
}
func (f *fakeEngine) LoadImage(context.Context, io.Reader) error { return nil }
func (f *fakeEngine) PullImage(ctx context.Context, ref string, out io.Writer) error {
	f.pulled = append(f.pulled, ref)
	if f.pull == nil {
		return errors.New("registry refused")
	}
	return f.pull(ctx, ref, out)
}
func (f *fakeEngine) TagImage(_ context.Context, src, dst string) error {
	f.tagged = append(f.tagged, src+"->"+dst)
	f.images[dst] = f.images[src]
	return nil
}
func (f *fakeEngine) RemoveImage(_ context.Context, ref string) error {
	delete(f.images, ref)
	return nil
}

func ensurer(f *fakeEngine, built *[]string) *Ensurer {
	return &Ensurer{
		Store: f,
		// A source dir without control/ makes the expected recipe unknown.
		Build: Options{SourceDir: "/nonexistent"},
		Out:   &bytes.Buffer{},
		build: func(_ context.Context, _ Store, o Options) (*Result, error) {
			*built = append(*built, o.Image+" "+o.Release.Kubernetes)
			return &Result{Image: o.Image}, nil
		},
	}
}

func TestEnsureUsesALocalImage(t *testing.T) {
	var built []string
	img := versions.Default().NodeImage()
	f := &fakeEngine{images: map[string]map[string]string{img: {}}}
	how, err := ensurer(f, &built).EnsureHow(context.Background(), img)
	if err != nil || how != FoundLocally || len(f.pulled) != 0 || len(built) != 0 {
		t.Fatalf("how %q err %v pulled %v built %v", how, err, f.pulled, built)
	}
}

func TestEnsureFallsBackToBuildingWhenNothingIsReachable(t *testing.T) {
	t.Setenv("BERTH_NODE_IMAGE_REPO", "registry.invalid/node")
	var built []string
	r, _ := versions.Resolve("v1.35")
	f := &fakeEngine{images: map[string]map[string]string{}}
	e := ensurer(f, &built)
	how, err := e.EnsureHow(context.Background(), r.NodeImage())
	if err != nil || how != Built {
		t.Fatalf("how %q err %v", how, err)
	}
	if len(f.pulled) != 1 || f.pulled[0] != "registry.invalid/node:v1.35.4" {
		t.Errorf("pulled %v", f.pulled)
	}
	if len(built) != 1 || built[0] != "berth/node:v1.35.4 v1.35.4" {
		t.Errorf("built %v", built)
	}
	if out := e.Out.(*bytes.Buffer).String(); !strings.Contains(out, "building berth/node:v1.35.4 from source") {
		t.Errorf("the fallback is not said: %q", out)
	}
}

func TestEnsureGivesUpASilentPullWithinSeconds(t *testing.T) {
	old := pullStallTimeout
	pullStallTimeout = 50 * time.Millisecond
	defer func() { pullStallTimeout = old }()
	var built []string
	f := &fakeEngine{images: map[string]map[string]string{}, pull: func(ctx context.Context, _ string, _ io.Writer) error {
		<-ctx.Done() // a registry that never answers
		return ctx.Err()
	}}
	start := time.Now()
	how, err := ensurer(f, &built).EnsureHow(context.Background(), versions.Default().NodeImage())
	if err != nil || how != Built {
		t.Fatalf("how %q err %v", how, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("fallback took %s", took)
	}
}

func TestEnsurePullsAndTagsTheReleaseImage(t *testing.T) {
	t.Setenv("BERTH_NODE_IMAGE_REPO", "localhost:5001/berth/node")
	var built []string
	r := versions.Default()
	remote := "localhost:5001/berth/node:" + r.Kubernetes
	f := &fakeEngine{images: map[string]map[string]string{}}
	f.pull = func(_ context.Context, ref string, out io.Writer) error {
		io.WriteString(out, "pulling\n")
		f.images[ref] = map[string]string{nodeconfig.LabelKubernetesVersion: r.Kubernetes}
		return nil
	}
	how, err := ensurer(f, &built).EnsureHow(context.Background(), r.NodeImage())
	if err != nil || how != Pulled || len(built) != 0 {
		t.Fatalf("how %q err %v built %v", how, err, built)
	}
	if len(f.tagged) != 1 || f.tagged[0] != remote+"->"+r.NodeImage() {
		t.Errorf("tagged %v", f.tagged)
	}
}

func TestEnsureRefusesAPulledImageOfAnotherVersion(t *testing.T) {
	var built []string
	r := versions.Default()
	f := &fakeEngine{images: map[string]map[string]string{}}
	f.pull = func(_ context.Context, ref string, _ io.Writer) error {
		f.images[ref] = map[string]string{nodeconfig.LabelKubernetesVersion: "v1.0.0"}
		return nil
	}
	how, err := ensurer(f, &built).EnsureHow(context.Background(), r.NodeImage())
	if err != nil || how != Built {
		t.Fatalf("how %q err %v", how, err)
	}
}

func TestEnsureAUserReferenceIsPulledOrRefused(t *testing.T) {
	var built []string
	f := &fakeEngine{images: map[string]map[string]string{}}
	_, err := ensurer(f, &built).EnsureHow(context.Background(), "localhost:5001/node@sha256:0123")
	if err == nil || !strings.Contains(err.Error(), "neither in Docker nor pullable") || len(built) != 0 {
		t.Fatalf("err %v built %v", err, built)
	}
	f.pull = func(_ context.Context, ref string, _ io.Writer) error {
		f.images[ref] = map[string]string{}
		return nil
	}
	how, err := ensurer(f, &built).EnsureHow(context.Background(), "localhost:5001/node@sha256:0123")
	if err != nil || how != Pulled {
		t.Fatalf("how %q err %v", how, err)
	}
}
