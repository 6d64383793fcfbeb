#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs the static checks,
# the tests (with the race detector) on SQLite and PostgreSQL, against the
# real Docker Engine, short fuzz runs, and the timing-sensitive packages
# again under CPU load. `make test` and .ci/run call this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-deps.sh

export FERRY_TEST_POSTGRES="${FERRY_TEST_POSTGRES:-postgres://ferry:ferry@127.0.0.1:5432/ferry?sslmode=disable}"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== golangci-lint"
./bin/golangci-lint run --allow-parallel-runners ./...

echo "== fuzz (short)"
# Each target runs a fixed number of inputs (-fuzztime Nx), about ten
# seconds' worth on an idle machine. A duration would race Go's fuzzing
# coordinator at its deadline on a busy machine and fail with a bare
# "context deadline exceeded" and no crasher (golang/go#75804, fixed in
# Go 1.27); a count has no deadline, and a busy machine only takes longer.
# FUZZTIME (a duration or a count) overrides every target's budget.
fuzz() { # PACKAGE TARGET COUNT
  go test -run='^$' -fuzz="^$2\$" -fuzztime="${FUZZTIME:-$3x}" "$1"
}
fuzz ./internal/pipeline FuzzParse 70000
fuzz ./internal/pipeline/program FuzzStarlark 180000
fuzz ./internal/pipeline/program FuzzJsonnetOutput 55000
fuzz ./internal/pipeline/program FuzzWoodpecker 35000
fuzz ./internal/logs FuzzLineWriter 400000
# The webhook parsers and the repo validators.
fuzz ./internal/forge FuzzGitHubHook 90000
fuzz ./internal/forge FuzzGiteaHook 25000
fuzz ./internal/forge FuzzGitLabHook 50000
fuzz ./internal/server FuzzValidateSlug 25000
fuzz ./internal/server FuzzCheckGitURL 28000

# --- tests (h3: per-test results; the stress check) ---
# gotestsum prints one line per test (PASS, FAIL, SKIP), then the output of
# every skipped and failed test (a skip's reason), and ends with
# "DONE N tests, K skipped, F failures in T". With CI=true a test that
# lacks a component it needs fails instead of skipping.
echo "== go test -race"
./bin/gotestsum --format testname -- -race -count=1 -timeout 20m ./...

# The timing-sensitive packages once more, while a CPU hog keeps every
# core busy: a test that depends on timing fails here. `make test-stress`
# runs the whole suite this way (CONTRIBUTING.md).
echo "== go test -race under CPU load (scripts/test-stress.sh)"
STRESS_SCOPE=concurrent STRESS_COUNT=1 bash scripts/test-stress.sh
# --- end of tests ---
