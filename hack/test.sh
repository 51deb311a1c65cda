#!/usr/bin/env bash
# The test command: set-up, formatting, vet, unit tests of both modules,
# then the end-to-end tests against real clusters in Docker.
# E2E=0 skips the end-to-end tests; E2E_HA=1 adds the 3-control-plane case;
# E2E_DAEMON_RESTART=1 restarts dockerd under a running cluster;
# E2E_NODE_IMAGE=berth/node:<tag> builds this tree's node image under that tag and
# creates the test clusters with it (the default tag is left alone);
# E2E_VERSIONS=v1.35 (or "all") also creates clusters at other supported
# minors (each needs its own node image: ~10 more minutes of compiling);
# CONFORMANCE=0 skips the upstream conformance subset that ends the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
hack/install-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi

# The control module is vetted and tested with the flags the node image
# build compiles it with (nodeimage.goFlags), so the (large) Kubernetes
# build cache is shared.
control_go() { (cd control && CGO_ENABLED=0 GOFLAGS="-trimpath -gcflags=all=-dwarf=false" go "$@"); }

echo "== go vet"
go vet ./...
control_go vet ./...

echo "== unit tests"
go test ./...
# The dependency-free modules the CLI and berth-node share.
for m in nodeimage/nodeconfig nodeimage/versions; do (cd "$m" && go vet ./... && go test ./...); done
# Every control package with tests (the others would only be compiled).
control_tested=$(control_go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...)
control_go test $control_tested

# A short fuzz run of every fuzz target (FUZZTIME=0 skips it; longer
# runs: docs/reliability.md). A failure leaves its input under the
# package's testdata/fuzz/, which then runs as a plain test case.
# The default budget is a count of inputs, not a duration: Go 1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure when a
# duration ends while a worker is mid-input (golang/go#75804, fixed in
# Go 1.27), which a loaded CI machine hits.
FUZZTIME=${FUZZTIME:-10000x}
if [ "$FUZZTIME" != 0 ]; then
  echo "== fuzzing ($FUZZTIME per target)"
  for target in cluster/config:FuzzLoad cluster/kubeconfig:FuzzMergeRemove \
      nodeimage/nodeconfig:FuzzLoad nodeimage/nodeconfig:FuzzParseVFLabel; do
    pkg=${target%%:*} fn=${target#*:}
    case $pkg in
      nodeimage/nodeconfig) (cd "$pkg" && go test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" .) ;;
      *) go test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" "./$pkg" ;;
    esac
  done
fi

if [ "${E2E:-1}" != 0 ]; then
  echo "== end-to-end tests (real clusters; the first run builds the node image)"
  go test -tags e2e -count=1 -timeout 80m -v ./cmd/berth/e2e/
fi

if [ "${E2E:-1}" != 0 ] && [ "${CONFORMANCE:-1}" != 0 ]; then
  echo "== conformance subset (hack/conformance/subset.txt; the first run compiles e2e.test and the test images)"
  SUBSET=1 REPORT= hack/conformance.sh
fi
