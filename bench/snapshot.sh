#!/usr/bin/env bash
# Times `berth snapshot restore` on a 1+2 cluster holding ~50 objects of
# user state (5 Deployments with a pod each, 40 ConfigMaps, a PVC with
# data): before each restore a Deployment is deleted, a namespace with 10
# ConfigMaps is added and the PVC is written. Median of RUNS printed.
#   bench/snapshot.sh
#   RUNS=7 NODE_IMAGE=berth/node:dev bench/snapshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
RUNS=${RUNS:-5}
go build -o bin/berth ./cmd/berth
image=()
if [ -n "${NODE_IMAGE:-}" ]; then
  bin/berth build node-image -q --image "$NODE_IMAGE"
  image=(--image "$NODE_IMAGE")
else
  bin/berth build node-image -q
fi
name=bench-snap
work=$(mktemp -d)
export BERTH_SNAPSHOT_DIR=$work/snapshots KUBECONFIG=$work/kubeconfig
trap 'bin/berth delete cluster --name $name -q >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bin/berth create cluster --name $name --workers 2 -q "${image[@]}" >/dev/null
k() { bin/berth kubectl -- --context berth-$name "$@"; }

{
  for i in $(seq 1 5); do cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: app$i}
spec:
  replicas: 1
  selector: {matchLabels: {app: app$i}}
  template:
    metadata: {labels: {app: app$i}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: docker.io/library/busybox:1.35-berth, imagePullPolicy: Never, command: [sleep, "100000"]}]
---
YAML
  done
  for i in $(seq 1 40); do printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm%d}\ndata: {k: "%d"}\n---\n' "$i" "$i"; done
  cat <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: keeper}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: k, image: docker.io/library/busybox:1.35-berth, imagePullPolicy: Never, command: [sh, -c, "echo saved > /data/f; exec sleep 100000"], volumeMounts: [{name: d, mountPath: /data}]}
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
YAML
} > "$work/state.yaml"
k apply -f "$work/state.yaml" >/dev/null
k wait --for=condition=Available deployment --all --timeout=3m >/dev/null
k wait --for=condition=Ready pod/keeper --timeout=3m >/dev/null
bin/berth snapshot save golden --name $name -q

times=()
for i in $(seq 1 "$RUNS"); do
  k delete deployment app1 --wait=false >/dev/null
  k create namespace scratch >/dev/null
  for j in $(seq 1 10); do k -n scratch create configmap "c$j" --from-literal=k=v >/dev/null; done
  k exec keeper -- sh -c 'echo changed > /data/f'
  start=$(date +%s.%N)
  bin/berth snapshot restore golden --name $name --yes -q
  end=$(date +%s.%N)
  times+=("$(echo "$end - $start" | bc)")
  # The restored state serves again before the next round.
  k wait --for=condition=Available deployment --all --timeout=3m >/dev/null
  [ "$(k exec keeper -- cat /data/f)" = saved ] || { echo "volume not restored" >&2; exit 1; }
  ! k get namespace scratch >/dev/null 2>&1 || { echo "namespace scratch survived the restore" >&2; exit 1; }
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
echo "berth snapshot restore, 1+2 nodes, ~50 objects, median of $RUNS: ${median}s (runs: ${times[*]})"
