//go:build e2e

package docker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/berth-dev/berth/nodeimage/ociarchive"
)

// An image loaded from the same archive twice keeps its ID: the engine
// stores the configuration as written, creation time included.
func TestLoadImageKeepsTheConfiguration(t *testing.T) {
	ctx := context.Background()
	p, err := New(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Skip(err)
	}
	const ref = "berth.test/load:e2e"
	img := ociarchive.Image{
		Name:   ref,
		Files:  []ociarchive.File{{Path: "hello", Mode: 0o755, Data: []byte("#!/bin/sh\necho hello\n")}},
		Labels: map[string]string{"berth.dev/test": "load"},
	}
	var archive bytes.Buffer
	if err := ociarchive.WriteArchive(&archive, ociarchive.Options{Docker: true}, img); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 2 {
		if err := p.LoadImage(ctx, bytes.NewReader(archive.Bytes())); err != nil {
			t.Fatal(err)
		}
		info, err := p.api.ImageInspect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if info.Created != "1970-01-01T00:00:00Z" || info.Config.Labels["berth.dev/test"] != "load" {
			t.Errorf("created %s, labels %v", info.Created, info.Config.Labels)
		}
		ids = append(ids, info.ID)
		if _, err := p.api.ImageRemove(ctx, ref, image.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("the same archive loaded twice gave image IDs %s and %s", ids[0], ids[1])
	}
	if err := p.LoadImage(ctx, bytes.NewReader(archive.Bytes()[:1024])); err == nil {
		t.Error("a truncated archive loaded")
	}
}
