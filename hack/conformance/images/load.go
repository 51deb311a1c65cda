package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/berth-dev/berth/nodeimage/ociarchive"
)

// engine is what loading needs of the container engine.
type engine interface {
	ImageID(ctx context.Context, ref string) (string, error)
	LoadImage(ctx context.Context, archive io.Reader) error
}

// stale returns the images the engine lacks under their names with their
// IDs: an image assembled from the same inputs has the same ID, so an
// unchanged image is never loaded again.
func stale(ctx context.Context, e engine, images []built) ([]ociarchive.Image, error) {
	var out []ociarchive.Image
	for _, i := range images {
		want, err := i.img.ID()
		if err != nil {
			return nil, err
		}
		have, err := e.ImageID(ctx, i.img.Name)
		if err != nil {
			return nil, err
		}
		if have != want.String() {
			out = append(out, i.img)
		}
	}
	return out, nil
}

// load loads the stale images into the engine, in one archive (the
// layers they share go once).
func load(ctx context.Context, e engine, images []built, log *slog.Logger) error {
	todo, err := stale(ctx, e, images)
	if err != nil {
		return err
	}
	if len(todo) == 0 {
		log.Info("every image is current")
		return nil
	}
	var names []string
	for _, img := range todo {
		names = append(names, img.Name)
	}
	log.Info("loading images into Docker", "images", names)
	return ociarchive.Load(ctx, e, todo...)
}
