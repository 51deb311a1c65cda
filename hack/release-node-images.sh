#!/usr/bin/env bash
# Builds the node image of every supported Kubernetes version for this
# machine's architecture and pushes it as REPO:<version>-<arch>; with
# MANIFEST=1 (run once, after every architecture has pushed) it joins the
# per-architecture images into one multi-arch reference REPO:<version>.
# goreleaser's release hook runs it (goreleaser.yaml); docs/release.md has
# the whole procedure.
#
#   REPO=ghcr.io/berth-dev/node hack/release-node-images.sh
#   REPO=ghcr.io/berth-dev/node MANIFEST=1 ARCHES="amd64 arm64" hack/release-node-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
REPO=${REPO:-ghcr.io/berth-dev/node}
ARCHES=${ARCHES:-amd64 arm64}
go build -o bin/berth ./cmd/berth
# The versions come from berth itself (nodeimage/versions).
mapfile -t VERSIONS < <(bin/berth version -o json | sed -n 's/.*"kubernetes": *"\(v[0-9.]*\)".*/\1/p')
arch=$(go env GOARCH)
if [ "${MANIFEST:-0}" = 1 ]; then
  for v in "${VERSIONS[@]}"; do
    refs=()
    for a in $ARCHES; do refs+=("$REPO:$v-$a"); done
    docker manifest rm "$REPO:$v" >/dev/null 2>&1 || true
    docker manifest create "$REPO:$v" "${refs[@]}"
    docker manifest push "$REPO:$v"
  done
  exit 0
fi
for v in "${VERSIONS[@]}"; do
  echo "== node image $v ($arch)"
  bin/berth build node-image --kubernetes-version "$v" --push "$REPO:$v-$arch"
done
