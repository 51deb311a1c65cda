// Command registry is a read-only OCI distribution (registry v2 API)
// server for the images of one `docker save` archive, unpacked into a
// directory. hack/conformance.sh runs it on a cluster's network as the
// nodes' mirror of registry.k8s.io, so that conformance tests which must
// pull (an image volume with pullPolicy Always) get the locally built
// test images instead of reaching a registry.
//
// Only what a pull needs is served: GET/HEAD /v2/, manifests by tag or
// digest, blobs by digest. Layers are served uncompressed as they are in
// the archive (OCI's application/vnd.oci.image.layer.v1.tar).
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", ":5000", "address to serve on")
	dir := flag.String("dir", "/data", "directory holding an unpacked `docker save` archive (manifest.json at its root)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := Load(*dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		os.Exit(1)
	}
	log.Info("serving", "listen", *listen, "dir", *dir, "images", len(store.manifests), "blobs", len(store.blobs))
	srv := &http.Server{
		Addr:              *listen,
		Handler:           store.Handler(log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		os.Exit(1)
	}
}
