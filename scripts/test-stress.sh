#!/usr/bin/env bash
# Runs tests while a CPU hog keeps every core busy: the check that no test
# depends on timing (tests wait for events and assert order and counts,
# never durations). `make test-stress` runs the whole suite this way, with
# the timing-sensitive packages three times; scripts/test.sh runs those
# packages once this way in CI.
#
#   scripts/test-stress.sh            the timing-sensitive packages, then the rest
#   STRESS_SCOPE=concurrent ...       the timing-sensitive packages only
#   STRESS_COUNT=N ...                runs of each timing-sensitive test (default 3)
#   scripts/test-stress.sh PKG...     these packages, STRESS_COUNT times
#
# The hog is stress-ng (Debian's stress-ng, installed by test-deps.sh) with
# one CPU worker per core, or a shell busy loop per core without it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages with concurrency and timing-sensitive code: agents, pollers,
# runtimes, backends, streams, the deploy node and its load balancer and
# downloads.
concurrent=(
  ./internal/agent
  ./internal/trigger
  ./internal/runtime
  ./internal/backend/local
  ./internal/backend/docker
  ./internal/forge
  ./internal/logs
  ./internal/apiclient
  ./internal/conformance
  ./internal/node
  ./internal/node/lb
  ./internal/artifact
  ./internal/notify
)
count="${STRESS_COUNT:-3}"
scope="${STRESS_SCOPE:-all}"
export FERRY_TEST_POSTGRES="${FERRY_TEST_POSTGRES:-postgres://ferry:ferry@127.0.0.1:5432/ferry?sslmode=disable}"

[ -x bin/gotestsum ] || bash scripts/test-deps.sh

hogs=()
stop_hog() {
  if [ ${#hogs[@]} -gt 0 ]; then
    kill "${hogs[@]}" 2>/dev/null || true
    wait "${hogs[@]}" 2>/dev/null || true
  fi
}
trap stop_hog EXIT
cores=$(nproc)
if command -v stress-ng >/dev/null; then
  # --timeout: the hog ends by itself should this script be killed.
  stress-ng --cpu "$cores" --timeout 3h --quiet &
  hogs+=($!)
  echo "== stress: stress-ng keeps $cores cores busy"
else
  for _ in $(seq "$cores"); do
    bash -c 'end=$((SECONDS+10800)); while [ $SECONDS -lt $end ]; do :; done' &
    hogs+=($!)
  done
  echo "== stress: a busy loop per core keeps $cores cores busy (no stress-ng)"
fi

gotest() { ./bin/gotestsum --format testname -- -race -timeout 60m "$@"; }

if [ $# -gt 0 ]; then
  echo "== stress: go test -race -count=$count $*"
  gotest -count="$count" "$@"
  exit
fi
echo "== stress: go test -race -count=$count (timing-sensitive packages)"
gotest -count="$count" "${concurrent[@]}"
if [ "$scope" = all ]; then
  mapfile -t rest < <(go list ./... | grep -v -x -F -f <(printf 'github.com/ferryci/ferry/%s\n' "${concurrent[@]#./}"))
  echo "== stress: go test -race -count=1 (the other packages)"
  gotest -count=1 "${rest[@]}"
fi
