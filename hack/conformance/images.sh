#!/usr/bin/env bash
# Builds, without any registry, the container images the upstream
# Kubernetes e2e suite runs, under the names `e2e.test --list-images`
# prints, into the local Docker engine; writes OUT_DIR/images.list and
# OUT_DIR/images.missing. The program is hack/conformance/images (its
# comment lists the images); CONTROL_GOFLAGS and DEBIAN_MIRROR pass through.
#
# Usage: hack/conformance/images.sh LIST [OUT_DIR]
set -euo pipefail
args=()
for a in "$@"; do args+=("$(realpath -m "$a")"); done
cd "$(dirname "$0")/../.."
GOWORK=off exec go run ./hack/conformance/images "${args[@]}"
