package node

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// MetalLB's images are imported only on a cluster that runs MetalLB (one
// with a LoadBalancer pool): elsewhere they would cost CPU at every boot
// for nothing.
func TestImportImagesSkipsMetalLBWithoutAPool(t *testing.T) {
	for _, pool := range []string{"", "172.30.0.128-172.30.0.254"} {
		n := testNode(nodeconfig.RoleWorker)
		n.LoadBalancerPool = pool
		b, run := testBooter(t, n)
		for _, name := range []string{"coredns.tar", MetalLBArchive} {
			writeFile(t, filepath.Join(b.paths.ImagesDir(), name), "x")
		}
		if err := b.importImages(context.Background(), podImages); err != nil {
			t.Fatal(err)
		}
		imported := map[string]bool{}
		for _, call := range run.recorded() {
			imported[filepath.Base(call[len(call)-1])] = true
		}
		if !imported["coredns.tar"] || imported[MetalLBArchive] != (pool != "") {
			t.Errorf("pool %q: imported %v", pool, imported)
		}
	}
}
