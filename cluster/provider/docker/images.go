package docker

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/moby/term"
)

// PullImage pulls ref through the engine, rendering its progress to out
// (bars on a terminal, one line per event elsewhere). A ref with a digest
// is verified by the engine against the manifest it fetches.
func (p *Provider) PullImage(ctx context.Context, ref string, out io.Writer) error {
	rc, err := p.api.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer rc.Close()
	if err := displayStream(rc, out); err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		info, err := p.api.ImageInspect(ctx, ref)
		if err != nil {
			return fmt.Errorf("inspecting %s after the pull: %w", ref, err)
		}
		for _, rd := range info.RepoDigests {
			if strings.HasSuffix(rd, "@"+digest) {
				return nil
			}
		}
		return fmt.Errorf("pulled %s, but its digests %v do not include %s", ref, info.RepoDigests, digest)
	}
	return nil
}

// PushImage pushes ref to its registry.
func (p *Provider) PushImage(ctx context.Context, ref string, out io.Writer) error {
	// An empty registry auth is sent as "e30=" ({}); registries without
	// authentication (a local one) accept it.
	rc, err := p.api.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: "e30="})
	if err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	defer rc.Close()
	if err := displayStream(rc, out); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// TagImage gives image src the reference dst.
func (p *Provider) TagImage(ctx context.Context, src, dst string) error {
	if err := p.api.ImageTag(ctx, src, dst); err != nil {
		return fmt.Errorf("tagging %s as %s: %w", src, dst, err)
	}
	return nil
}

// RemoveImage removes ref (not the layers other references share).
func (p *Provider) RemoveImage(ctx context.Context, ref string) error {
	if _, err := p.api.ImageRemove(ctx, ref, image.RemoveOptions{}); err != nil {
		return fmt.Errorf("removing image %s: %w", ref, err)
	}
	return nil
}

// ImageDigest returns the registry digest (sha256:...) ref was pushed or
// pulled with, or "" when it has none.
func (p *Provider) ImageDigest(ctx context.Context, ref string) (string, error) {
	info, err := p.api.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("inspecting %s: %w", ref, err)
	}
	for _, rd := range info.RepoDigests {
		if _, d, ok := strings.Cut(rd, "@"); ok {
			return d, nil
		}
	}
	return "", nil
}

// displayStream renders the engine's JSON progress messages with the
// engine's own renderer (jsonmessage) and returns the error a message
// carries.
func displayStream(rc io.Reader, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	// Anything with an Fd (a terminal, or a writer wrapping one) gets
	// progress bars.
	fd, isTerm := term.GetFdInfo(out)
	return jsonmessage.DisplayJSONMessagesStream(rc, out, fd, isTerm, nil)
}
