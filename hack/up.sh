#!/usr/bin/env bash
# Set up a fresh machine and create the default cluster: installs what is
# missing, builds berth into bin/, then `berth create cluster` (which
# builds the node image from source the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
GOWORK=off go build -o bin/berth ./cmd/berth
exec bin/berth create cluster "$@"
