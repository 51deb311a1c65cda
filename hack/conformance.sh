#!/usr/bin/env bash
# Runs the upstream Kubernetes conformance suite (e2e.test of the cluster's
# Kubernetes version, built from source) on a berth cluster, with no container registry but
# berth's own local one: every test image is built from source or Debian
# packages (hack/conformance/images.sh), loaded into the nodes, and pushed
# into the local registry (berth create cluster --registry) that serves
# as the nodes' registry.k8s.io for the tests that must pull.
#
#   hack/conformance.sh            # every [Conformance] test
#   SUBSET=1 hack/conformance.sh   # the CI subset (hack/conformance/subset.txt)
#
# Environment:
#   KUBERNETES_VERSION=v1.35
#                the version to test (a minor or a pinned patch; default:
#                berth's default — `berth version` lists them)
#   SUBSET=1     run the subset instead of the whole suite
#   FOCUS=RE     ginkgo focus regex (default '\[Conformance\]'; overrides SUBSET)
#   SKIP=RE      ginkgo skip regex (default: none)
#   PROCS=N      parallel ginkgo processes (default 4; [Serial] tests still
#                run alone, at the end)
#   NAME=conf    cluster name (must not exist, or be a previous run's)
#   KEEP=1       keep the cluster afterwards
#   REPORT=FILE  Markdown file whose results section is rewritten
#                (default docs/conformance.md; REPORT= to skip)
#   TIMEOUT=2h   ginkgo's timeout for the whole suite
#
# Outputs go to ~/.cache/berth/conformance (OUT=...): the binaries, the
# images' inputs, and run-<time>/ with the log, JSON and JUnit reports.
# Exits non-zero when a test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
export CI=true # berth: never interactive
NAME=${NAME:-conf}
OUT=${OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/berth/conformance}
PROCS=${PROCS:-4}
TIMEOUT=${TIMEOUT:-2h}
REPORT=${REPORT-docs/conformance.md}
mkdir -p "$OUT"
RUN=$OUT/run-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
TIMINGS=$RUN/timings
: >"$TIMINGS"
T0=$(date +%s)

log() { printf '[conformance %s] %s\n' "$(date +%T)" "$*" >&2; }
# timed STEP CMD...: runs CMD and records its wall time under STEP.
timed() {
  local step=$1 t
  shift
  t=$(date +%s)
  "$@"
  echo "$step $(($(date +%s) - t))" >>"$TIMINGS"
}

if [ -n "${FOCUS:-}" ]; then
  MODE=custom
  LABEL_FILTER=
elif [ "${SUBSET:-0}" = 1 ]; then
  MODE=subset
  FOCUS=$(grep -v '^#' hack/conformance/subset.txt | grep . | paste -sd '|')
  LABEL_FILTER=Conformance
else
  MODE=full
  FOCUS='\[Conformance\]'
  LABEL_FILTER=
fi

# --- 1. the berth CLI and the suite's binaries (e2e.test, ginkgo, kubectl)
timed build-berth go build -o bin/berth ./cmd/berth
BERTH=$PWD/bin/berth

# The version, resolved by berth (nodeimage/versions is the one place
# versions live), and the build module that compiles the control module
# against it ("" for the default version: control/go.mod itself).
read -r K8S_VERSION MODFILE < <("$BERTH" build control-module --kubernetes-version "${KUBERNETES_VERSION:-}")
# The node image's compile flags (nodeimage.goFlags), so e2e.test reuses
# the Kubernetes packages berth-node's compile left in the build cache.
export CONTROL_GOFLAGS="-trimpath -gcflags=all=-dwarf=false${MODFILE:+ -modfile=$MODFILE}"
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
OUT=$OUT/$K8S_VERSION
mkdir -p "$OUT"
log "Kubernetes $K8S_VERSION${MODFILE:+ (build module $MODFILE)}"

ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
# Rebuilt when the control module's dependencies or these flags change.
key=$( (cat control/go.mod control/go.sum ${MODFILE:+"$MODFILE"}; echo "$ldflags"; go version) | sha256sum | cut -c1-16)
build_suite() {
  log "compiling e2e.test $K8S_VERSION (several minutes the first time)"
  (cd control && CGO_ENABLED=0 GOFLAGS="$CONTROL_GOFLAGS" go test -c -ldflags "$ldflags" -o "$OUT/e2e.test" k8s.io/kubernetes/test/e2e)
  log "compiling ginkgo and kubectl"
  (cd control && CGO_ENABLED=0 GOFLAGS="$CONTROL_GOFLAGS" go build -ldflags "$ldflags" -o "$OUT/kubectl" k8s.io/kubernetes/cmd/kubectl)
  (cd control && CGO_ENABLED=0 GOFLAGS="$CONTROL_GOFLAGS" go build -ldflags "-s -w" -o "$OUT/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)
  echo "$key" >"$OUT/suite.key"
}
if [ "$(cat "$OUT/suite.key" 2>/dev/null)" != "$key" ] || [ ! -x "$OUT/e2e.test" ] || [ ! -x "$OUT/ginkgo" ] || [ ! -x "$OUT/kubectl" ]; then
  timed build-e2e.test build_suite
else
  log "e2e.test, ginkgo and kubectl are current"
fi
(cd control && CGO_ENABLED=0 GOFLAGS=-trimpath go build -o "$OUT/report" ./conformance/report)

# --- 2. the test images, under the names the suite expects
"$OUT/e2e.test" --list-images | sort >"$OUT/list-images.txt"
timed build-images hack/conformance/images.sh "$OUT/list-images.txt" "$OUT"

# --- 3. the cluster: 1 control plane + 2 workers
if "$BERTH" get clusters 2>/dev/null | grep -qx "$NAME"; then
  log "deleting cluster $NAME left by an earlier run"
  "$BERTH" delete cluster --name "$NAME" --yes
fi
# The machine's local registry is shared (and outlives the cluster): use
# the running one's port, else the default. A registry this run started
# is removed again at the end (the end-to-end tests, and the user, expect
# a machine without one); one that was already running is left as it was,
# with the test images in it (`berth delete registry` frees the space).
REGISTRY_PORT=$("$BERTH" get registry -o json | sed -n 's/.*"address": *"localhost:\([0-9]*\)".*/\1/p')
REGISTRY_WAS_RUNNING=${REGISTRY_PORT:+1}
REGISTRY_PORT=${REGISTRY_PORT:-5001}
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    log "deleting cluster $NAME"
    "$BERTH" delete cluster --name "$NAME" --yes >/dev/null 2>&1 || log "could not delete cluster $NAME"
    if [ -z "$REGISTRY_WAS_RUNNING" ]; then
      log "deleting the local registry this run started"
      "$BERTH" delete registry --yes >/dev/null 2>&1 || log "could not delete the local registry"
    fi
  fi
}
trap cleanup EXIT
printf 'apiVersion: berth.dev/v1alpha1\nkind: Cluster\nregistry: {port: %s}\n' "$REGISTRY_PORT" |
  timed create-cluster "$BERTH" create cluster --config - --name "$NAME" --workers 2 --kubernetes-version "$K8S_VERSION"
"$BERTH" get kubeconfig --name "$NAME" >"$RUN/kubeconfig"
chmod 600 "$RUN/kubeconfig"
# shellcheck disable=SC2046
timed load-images "$BERTH" load image --name "$NAME" $(cat "$OUT/images.list")

# registry.k8s.io for the tests that must pull (an image volume with
# pullPolicy Always): the images above, pushed into the local registry
# under registry.k8s.io/..., and every node's containerd pointed there for
# registry.k8s.io (override_path keeps them apart from the registry's
# other repositories). containerd reads
# /etc/containerd/certs.d/<registry>/hosts.toml at every pull.
start_mirror() {
  local ref node pushed=0
  for ref in $(cat "$OUT/images.list"); do
    case $ref in registry.k8s.io/*) ;; *) continue ;; esac
    docker tag "$ref" "localhost:$REGISTRY_PORT/$ref"
    docker push "localhost:$REGISTRY_PORT/$ref" >/dev/null
    docker rmi "localhost:$REGISTRY_PORT/$ref" >/dev/null
    pushed=$((pushed + 1))
  done
  for node in $("$BERTH" get nodes --name "$NAME" -o json | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p'); do
    docker exec -i "$node" sh -c 'mkdir -p /etc/containerd/certs.d/registry.k8s.io && cat >/etc/containerd/certs.d/registry.k8s.io/hosts.toml' <<EOF
server = "https://registry.k8s.io"

[host."http://berth-registry:5000/v2/registry.k8s.io"]
  capabilities = ["pull", "resolve"]
  override_path = true
EOF
  done
  log "registry.k8s.io served by the local registry: $pushed images under localhost:$REGISTRY_PORT/registry.k8s.io/"
}
timed start-mirror start_mirror

# --- 4. the suite
args=(--no-color --procs="$PROCS" --timeout="$TIMEOUT" --focus="$FOCUS" --silence-skips
  --output-dir="$RUN" --json-report=report.json --junit-report=junit.xml --poll-progress-after=5m)
[ -n "$LABEL_FILTER" ] && args+=(--label-filter="$LABEL_FILTER")
[ -n "${SKIP:-}" ] && args+=(--skip="$SKIP")
log "running the $MODE selection on $PROCS processes; log: $RUN/e2e.log"
set +e
t=$(date +%s)
"$OUT/ginkgo" run "${args[@]}" "$OUT/e2e.test" -- \
  --provider=skeleton --kubeconfig="$RUN/kubeconfig" --kubectl-path="$OUT/kubectl" \
  --report-dir="$RUN" --disable-log-dump >"$RUN/e2e.log" 2>&1
rc=$?
echo "run-suite $(($(date +%s) - t))" >>"$TIMINGS"
set -e
tail -5 "$RUN/e2e.log" >&2
echo "total $(($(date +%s) - T0))" >>"$TIMINGS"

# --- 5. the report
if [ ! -f "$RUN/report.json" ]; then
  log "the suite wrote no report (exit $rc); see $RUN/e2e.log"
  exit 1
fi
case $MODE in
full) title="Full conformance suite, Kubernetes $K8S_VERSION" ;;
subset) title="Subset (SUBSET=1, hack/conformance/subset.txt), Kubernetes $K8S_VERSION" ;;
*) title="Custom focus, Kubernetes $K8S_VERSION" ;;
esac
cmd="KUBERNETES_VERSION=$K8S_VERSION hack/conformance.sh"
[ "$MODE" = subset ] && cmd="SUBSET=1 $cmd"
[ "$MODE" = custom ] && cmd="FOCUS='$FOCUS' $cmd"
[ "$PROCS" != 4 ] && cmd="PROCS=$PROCS $cmd"
"$OUT/report" -json "$RUN/report.json" -title "$title" -command "$cmd" -timings "$TIMINGS" >"$RUN/results.md"
if [ -n "$REPORT" ]; then
  # Replace the section between the markers for this mode (or append one).
  begin="<!-- results:$MODE:$K8S_VERSION:begin -->" end="<!-- results:$MODE:$K8S_VERSION:end -->"
  [ -f "$REPORT" ] || echo "# Conformance" >"$REPORT"
  if ! grep -qF "$begin" "$REPORT"; then
    printf '\n%s\n%s\n' "$begin" "$end" >>"$REPORT"
  fi
  awk -v b="$begin" -v e="$end" -v f="$RUN/results.md" '
    $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$REPORT" >"$REPORT.tmp" && mv "$REPORT.tmp" "$REPORT"
  log "results written to $REPORT"
fi
cat "$RUN/results.md"
exit $rc
