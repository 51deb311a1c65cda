package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Media types of what the store serves.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Store holds the manifests of every tagged image of an unpacked
// `docker save` archive and where each blob lives on disk.
type Store struct {
	// manifests: "<host>/<repository>:<tag>" and "sha256:..." -> manifest.
	manifests map[string][]byte
	// blobs: digest -> file.
	blobs map[string]string
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// Load indexes dir, an unpacked `docker save` archive: manifest.json lists
// each image's config file, layer tars and tags.
func Load(dir string) (*Store, error) {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the archive's index: %w", err)
	}
	var images []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(data, &images); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, "manifest.json"), err)
	}
	s := &Store{manifests: map[string][]byte{}, blobs: map[string]string{}}
	for _, img := range images {
		config, err := s.addBlob(dir, img.Config, mediaConfig)
		if err != nil {
			return nil, err
		}
		m := manifest{SchemaVersion: 2, MediaType: mediaManifest, Config: config, Layers: []descriptor{}}
		for _, l := range img.Layers {
			d, err := s.addBlob(dir, l, mediaLayer)
			if err != nil {
				return nil, err
			}
			m.Layers = append(m.Layers, d)
		}
		body, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		s.manifests[digestOf(body)] = body
		for _, ref := range img.RepoTags {
			s.manifests[normalize(ref)] = body
		}
	}
	return s, nil
}

// addBlob hashes the archive file rel and records it under its digest.
func (s *Store) addBlob(dir, rel, mediaType string) (descriptor, error) {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	f, err := os.Open(path)
	if err != nil {
		return descriptor{}, fmt.Errorf("opening blob %s: %w", rel, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return descriptor{}, fmt.Errorf("hashing blob %s: %w", rel, err)
	}
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	s.blobs[d] = path
	return descriptor{MediaType: mediaType, Digest: d, Size: n}, nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// normalize spells a reference as "<host>/<repository>:<tag>", filling in
// Docker Hub's defaults the way `docker save` may have left them out.
func normalize(ref string) string {
	name, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i+1:]
	}
	first, _, found := strings.Cut(name, "/")
	if !found || !strings.ContainsAny(first, ".:") && first != "localhost" {
		if !found {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	return name + ":" + tag
}

var route = regexp.MustCompile(`^/v2/(.+)/(manifests|blobs)/([^/]+)$`)

// Handler serves the registry API. A mirror request carries the registry
// it stands in for as ?ns=<host> (containerd sends it); without one the
// repository may name its host as the first path element or be Docker
// Hub's.
func (s *Store) Handler(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only")
			return
		}
		if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
			return
		}
		m := route.FindStringSubmatch(r.URL.Path)
		if m == nil {
			apiError(w, http.StatusNotFound, "NAME_UNKNOWN", "no such route")
			return
		}
		repo, kind, ref := m[1], m[2], m[3]
		status := http.StatusOK
		defer func() {
			log.Info("request", "method", r.Method, "path", r.URL.Path, "ns", r.URL.Query().Get("ns"), "status", status)
		}()
		if kind == "blobs" {
			path, ok := s.blobs[ref]
			if !ok {
				status = http.StatusNotFound
				apiError(w, status, "BLOB_UNKNOWN", "blob unknown to registry")
				return
			}
			w.Header().Set("Docker-Content-Digest", ref)
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeFile(w, r, path)
			return
		}
		body, ok := s.manifest(r.URL.Query().Get("ns"), repo, ref)
		if !ok {
			status = http.StatusNotFound
			apiError(w, status, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		w.Header().Set("Content-Type", mediaManifest)
		w.Header().Set("Docker-Content-Digest", digestOf(body))
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// manifest finds repo's manifest for ref, a tag or a digest.
func (s *Store) manifest(ns, repo, ref string) ([]byte, bool) {
	if strings.HasPrefix(ref, "sha256:") {
		b, ok := s.manifests[ref]
		return b, ok
	}
	var candidates []string
	if ns != "" {
		candidates = append(candidates, ns+"/"+repo+":"+ref)
	} else {
		candidates = append(candidates, normalize(repo+":"+ref))
	}
	for _, c := range candidates {
		if b, ok := s.manifests[c]; ok {
			return b, true
		}
	}
	return nil, false
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
