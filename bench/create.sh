#!/usr/bin/env bash
# Prints berth's create-to-DNS phases (time-to-k8s), CPU seconds, delete
# time, idle memory per node and the node image size, as medians.
#   bench/create.sh              # 1 node, 3 runs
#   RUNS=5 WORKERS=2 bench/create.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
go build -o bin/berth ./cmd/berth
bin/berth build node-image -q
go run ./bench/timetok8s -runs "${RUNS:-3}" -workers "${WORKERS:-0}" -berth bin/berth
