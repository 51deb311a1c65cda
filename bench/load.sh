#!/usr/bin/env bash
# Times `berth load image` of a ~100 MB image into a 3-node cluster
# (1 control plane, 2 workers): RUNS distinct images (fresh content each,
# so nothing is skipped), median printed. BERTH=path times another berth
# binary (e.g. an older build, to compare within one sitting). CPU=1 also
# prints, for each run, where the machine's CPU time went (bench/cpuof).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
RUNS=${RUNS:-3}
if [ -z "${BERTH:-}" ]; then
  go build -o bin/berth ./cmd/berth
  BERTH=bin/berth
fi
$BERTH build node-image -q
cpuof=()
if [ -n "${CPU:-}" ]; then
  go build -o bin/cpuof ./bench/cpuof
  cpuof=(bin/cpuof --)
fi
name=bench-load
trap '$BERTH delete cluster --name $name -q >/dev/null 2>&1 || true' EXIT
$BERTH create cluster --name $name --workers 2 -q >/dev/null
work=$(mktemp -d)
times=()
for i in $(seq 1 "$RUNS"); do
  head -c 100000000 /dev/urandom > "$work/blob"
  tar -C "$work" -cf "$work/rootfs.tar" blob
  docker import "$work/rootfs.tar" "berth-bench/big:$i" >/dev/null
  start=$(date +%s.%N)
  "${cpuof[@]}" $BERTH load image "berth-bench/big:$i" --name $name -q
  end=$(date +%s.%N)
  times+=("$(echo "$end - $start" | bc)")
  docker rmi -f "berth-bench/big:$i" >/dev/null
done
rm -rf "$work"
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
echo "berth load image, 100 MB image into 3 nodes, median of $RUNS: ${median}s (runs: ${times[*]})"
