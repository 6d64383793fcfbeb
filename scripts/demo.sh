#!/usr/bin/env bash
# ferry's main job, for a newcomer: `ferry up` (server + agent in one process,
# embedded SQLite) builds a real local git repository holding the example
# pipeline, prints the build's log, and exits with the build's status.
# Pass --serve to keep the server running afterwards (Ctrl-C stops it).
# FERRY_BIN names another ferry binary (default: bin/ferry, built by make run).
# Everything it writes (the repository and ferry's data) lives in one
# temporary directory, removed when it ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo.XXXXXX")
# Not exec: the shell must outlive ferry to run this trap.
trap 'rm -rf "$work"' EXIT
repo="$work/hello"
mkdir -p "$repo"
cp "$root/examples/hello.ferry.yml" "$repo/.ferry.yml"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name="ferry demo" -c user.email="demo@ferry.invalid" add .ferry.yml
git -C "$repo" -c user.name="ferry demo" -c user.email="demo@ferry.invalid" commit -q -m "Add the example pipeline"
once=--once
[ "${1:-}" = "--serve" ] && once=
# With --once the server and its data dir are gone when ferry exits: an
# admin token (and how to make another in that data dir) would be of no
# use, so the demo gives one of its own that is never printed.
token=()
[ -n "$once" ] && token=(--admin-token "demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')")
# Ctrl-C reaches ferry (same process group), which stops gracefully; the
# shell waits for it, then removes $work.
# The agent's work dir ($TMPDIR/ferry-agent) goes in $work too; host steps
# may run as another user (nobody, under root), who must be able to enter
# it: $work is made traversable, not readable (ferry's data dir inside
# stays private).
chmod 711 "$work"
code=0
TMPDIR="$work" "${FERRY_BIN:-$root/bin/ferry}" up $once "${token[@]}" --repo "$repo" --data-dir "$work/ferry-data" --addr "${FERRY_ADDR:-127.0.0.1:8080}" --log-level warn || code=$?
exit "$code"
