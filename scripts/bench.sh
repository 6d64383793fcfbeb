#!/usr/bin/env bash
# Runs ferry's benchmarks. Each benchmark measures its baseline in the same
# run (raw fork/exec, raw docker run, ...) and prints the ratio as a custom
# metric, so results compare across machines. docs/benchmarks.md explains
# each number and its target. Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${BENCH_COUNT:-1}"

echo "== local backend: fixed cost, extra step, log lines; the binary's start against the fork/exec floor, programs run before the first step, peak RSS and anonymous memory (internal/cli)"
go test -run '^$' -bench 'Local|Process' -benchtime "${BENCHTIME:-30x}" -count "$count" ./internal/cli/

echo "== ferry lint on a 1 MiB file of many pipelines (internal/cli)"
go test -run '^$' -bench 'Lint1MB' -benchtime "${LINT_BENCHTIME:-20x}" -count "$count" ./internal/cli/

echo "== log masking and line splitting (internal/logs)"
go test -run '^$' -bench . -count "$count" ./internal/logs/

echo "== docker backend: one step vs raw docker run (internal/backend/docker)"
go test -run '^$' -bench 'StepVsDockerRun' -benchtime "${DOCKER_BENCHTIME:-10x}" -count "$count" ./internal/backend/docker/

echo "== local backend: one step vs raw fork/exec (internal/backend/local)"
go test -run '^$' -bench . -count "$count" ./internal/backend/local/

echo "== server + agents: dispatch throughput, 1/4/16 agents, SQLite and PostgreSQL (internal/e2e)"
echo "   (PostgreSQL variants need FERRY_TEST_POSTGRES)"
go test -run '^$' -bench 'Dispatch' -benchtime "${E2E_BENCHTIME:-1000x}" -count "$count" ./internal/e2e/

echo "== server + agents: webhook-to-first-step latency and server RSS (internal/e2e)"
go test -run '^$' -bench 'WebhookToStep|ServerIdleRSS' -benchtime 200x -count "$count" ./internal/e2e/

echo "== ferry node: rollback to a kept release, 50 nodes converging on a new release (internal/node)"
go test -run '^$' -bench 'RollbackToKeptRelease' -benchtime 200x -count "$count" ./internal/node/
go test -run '^$' -bench 'FleetConvergence' -benchtime 20x -count "$count" ./internal/node/
