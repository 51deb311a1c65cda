package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// SandboxArchive is the pause image's archive in ImagesDir.
const SandboxArchive = "pause.tar"

// imageGroup selects archives in ImagesDir.
type imageGroup int

const (
	// sandboxImage is the pause image alone: the kubelet needs it for
	// every pod.
	sandboxImage imageGroup = iota
	// podImages are all the others (the add-ons', the test images).
	podImages
)

func (g imageGroup) includes(archive string) bool {
	return (filepath.Base(archive) == SandboxArchive) == (g == sandboxImage)
}

// archives returns the OCI archives (*.tar) of g in dir, sorted by name.
func archives(dir string, g imageGroup) ([]string, error) {
	all, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range all {
		if g.includes(a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// importImages loads the pre-built pod images of g into containerd's
// k8s.io namespace, one after the other (parallel imports contend for the
// same lease). A failed import does not stop the others; all failures are
// returned together.
func (b *booter) importImages(ctx context.Context, g imageGroup) error {
	list, err := archives(b.paths.ImagesDir(), g)
	if err != nil {
		return err
	}
	started := time.Now()
	var errs []error
	for _, archive := range list {
		if _, err := b.run.Run(ctx, CtrBin, "--address", b.paths.ContainerdSocket(), "--namespace", "k8s.io", "images", "import", "--local", archive); err != nil {
			errs = append(errs, fmt.Errorf("importing %s: %w", filepath.Base(archive), err))
		}
	}
	b.log.Info("images imported", "count", len(list), "took", time.Since(started).Round(time.Millisecond))
	return errors.Join(errs...)
}
