package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berth-dev/berth/cluster/provider"
)

func sortNodes(nodes []provider.Node) {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
}

// ReadFile copies one file out of a node.
func (p *Provider) ReadFile(ctx context.Context, node, path string) ([]byte, error) {
	rc, _, err := p.api.CopyFromContainer(ctx, node, path)
	if err != nil {
		return nil, fmt.Errorf("reading %s from node %s: %w", path, node, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("reading %s from node %s: %w", path, node, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

// Exec runs cmd in node with stdin attached (if not nil) and its stdout
// and stderr written to stdout (if not nil). A non-zero exit is an error
// carrying the command's stderr.
func (p *Provider) Exec(ctx context.Context, node string, stdin io.Reader, stdout io.Writer, cmd ...string) error {
	created, err := p.api.ContainerExecCreate(ctx, node, container.ExecOptions{
		Cmd:          cmd,
		AttachStdin:  stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return fmt.Errorf("exec in node %s: %w", node, err)
	}
	resp, err := p.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("attaching to exec in node %s: %w", node, err)
	}
	defer resp.Close()
	copyErr := make(chan error, 1)
	if stdin != nil {
		go func() {
			_, err := io.Copy(resp.Conn, stdin)
			_ = resp.CloseWrite()
			copyErr <- err
		}()
	} else {
		copyErr <- nil
	}
	var stderr bytes.Buffer
	out := stdout
	if out == nil {
		out = io.Discard
	}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, &stderr, resp.Reader)
		done <- err
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		if err != nil {
			return fmt.Errorf("reading exec output from node %s: %w", node, err)
		}
	}
	inErr := <-copyErr
	inspect, err := p.api.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		return fmt.Errorf("inspecting exec in node %s: %w", node, err)
	}
	// The command's own failure explains a broken input stream better
	// than the stream error does.
	if inspect.ExitCode != 0 {
		return &provider.ExecError{Node: node, Cmd: cmd, ExitCode: inspect.ExitCode, Stderr: string(bytes.TrimSpace(stderr.Bytes()))}
	}
	if inErr != nil {
		return fmt.Errorf("streaming input to node %s: %w", node, inErr)
	}
	return nil
}

// WriteFile streams content into dir/name in node through the engine's
// archive endpoint (a one-file tar made on the fly). For bulk data this
// is an order of magnitude faster than an exec's stdin: measured on
// Docker 20.10 with 100 MB, 0.6–2 s against 9–15 s on a loaded machine,
// the attach stream going through the engine, its containerd and the
// exec's shim in small writes.
func (p *Provider) WriteFile(ctx context.Context, node, dir, name string, size int64, content io.Reader) error {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.CopyN(tw, content, size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	if err := p.api.CopyToContainer(ctx, node, dir, pr, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("writing %s/%s into node %s: %w", dir, name, node, err)
	}
	return nil
}

// SaveImages streams images as a docker-archive tar.
func (p *Provider) SaveImages(ctx context.Context, images []string) (io.ReadCloser, error) {
	rc, err := p.api.ImageSave(ctx, images)
	if err != nil {
		return nil, fmt.Errorf("exporting images %v from Docker: %w", images, err)
	}
	return rc, nil
}

// ImageID returns an image's ID, or "" if Docker does not have it.
func (p *Provider) ImageID(ctx context.Context, ref string) (string, error) {
	info, err := p.api.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	return info.ID, nil
}

// ImageInfo returns an image's ID, size and layers, or nil if Docker does
// not have it.
func (p *Provider) ImageInfo(ctx context.Context, ref string) (*provider.ImageInfo, error) {
	info, err := p.api.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	return &provider.ImageInfo{ID: info.ID, Size: info.Size, Layers: info.RootFS.Layers}, nil
}

// ImageLabels returns an image's labels.
func (p *Provider) ImageLabels(ctx context.Context, ref string) (map[string]string, bool, error) {
	info, err := p.api.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	if info.Config == nil {
		return map[string]string{}, true, nil
	}
	return info.Config.Labels, true, nil
}

// ImportImage creates image ref from a root filesystem tar stream, with
// Dockerfile-style changes (ENTRYPOINT, LABEL, ENV, ...).
func (p *Provider) ImportImage(ctx context.Context, rootfs io.Reader, ref string, changes []string) error {
	rc, err := p.api.ImageImport(ctx, image.ImportSource{Source: rootfs, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("importing image %s: %w", ref, err)
	}
	defer rc.Close()
	if err := progressError(rc); err != nil {
		return fmt.Errorf("importing image %s: %w", ref, err)
	}
	return nil
}

// LoadImage loads the images of a docker-archive tar stream (`docker
// load`). Unlike ImportImage it keeps the configuration it is given,
// creation time included.
func (p *Provider) LoadImage(ctx context.Context, archive io.Reader) error {
	resp, err := p.api.ImageLoad(ctx, archive, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("loading images into Docker: %w", err)
	}
	defer resp.Body.Close()
	if !resp.JSON {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := progressError(resp.Body); err != nil {
		return fmt.Errorf("loading images into Docker: %w", err)
	}
	return nil
}

// progressError reads the engine's stream of JSON progress messages to
// its end: a failure arrives as one with an error field, not as an HTTP
// error.
func progressError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}
