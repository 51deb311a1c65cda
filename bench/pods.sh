#!/usr/bin/env bash
# Times 100 pods to Running and Ready on a 3-node cluster (1 control plane,
# 2 workers): a Deployment of 100 replicas of the pause image (present in
# every node, so nothing is pulled), from `kubectl create` until `rollout
# status` reports every replica available. RUNS runs (default 3), each a
# new Deployment once the previous one's pods are gone; median printed.
# CPU=1 also prints, for each run, where the machine's CPU time went
# (bench/cpuof: each node component, containerd, shims, pods, Docker).
# IMAGE=berth/node:TAG creates the cluster from that node image (for A/B
# comparisons) instead of building this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
RUNS=${RUNS:-3}
PODS=${PODS:-100}
go build -o bin/berth ./cmd/berth
cpuof=()
if [ -n "${CPU:-}" ]; then
  go build -o bin/cpuof ./bench/cpuof
  cpuof=(bin/cpuof --)
fi
if [ -z "${IMAGE:-}" ]; then bin/berth build node-image -q; fi
name=bench-pods
trap 'bin/berth delete cluster --name $name -q >/dev/null 2>&1 || true' EXIT
bin/berth create cluster --name $name --workers 2 ${IMAGE:+--image "$IMAGE"} -q >/dev/null
k() { bin/berth kubectl --context "berth-$name" -- "$@"; }
times=()
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s.%N)
  "${cpuof[@]}" sh -c 'set -e; b=$1; shift; $b kubectl --context "$1" -- create deployment "$2" --image=registry.k8s.io/pause:3.10.2 --replicas="$3" >/dev/null
    $b kubectl --context "$1" -- rollout status "deployment/$2" --timeout=5m >/dev/null' _ bin/berth "berth-$name" "pods$i" "$PODS"
  end=$(date +%s.%N)
  times+=("$(echo "$end - $start" | bc)")
  k delete deployment "pods$i" --wait=true >/dev/null
  k wait --for=delete pod -l "app=pods$i" --timeout=5m >/dev/null 2>&1 || true
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
echo "$PODS pods to Running (Deployment available) on 3 nodes, median of $RUNS: ${median}s (runs: ${times[*]})"
