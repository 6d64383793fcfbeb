#!/usr/bin/env bash
# Installs and starts everything the test suite needs on a fresh Debian
# machine: busybox-static (the test images are built from it), git,
# PostgreSQL on loopback, stress-ng (the CPU hog of the stress check),
# chromium, HAProxy (the node's load-balancer driver), a pinned versitygw (the
# S3 server of the artifact store tests), and pinned golangci-lint and
# gotestsum. Idempotent and quick when everything is already there. Exports nothing: scripts/test.sh sets the
# variables the tests read.
set -euo pipefail

need_apt=()
# The test images need a static busybox (Debian's busybox-static).
bb=$( { ldd /bin/busybox 2>&1 || true; } )
case "$bb" in *"not a dynamic"*) ;; *) need_apt+=(busybox-static) ;; esac
command -v git >/dev/null || need_apt+=(git)
# The SSH deploy key tests run a real sshd (Debian's openssh-server).
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
# The CPU hog of scripts/test-stress.sh.
command -v stress-ng >/dev/null || need_apt+=(stress-ng)
# The UI's browser tests drive Debian's chromium (headless) through chromedp.
command -v chromium >/dev/null || need_apt+=(chromium fonts-dejavu-core)
# The tests start their own haproxy; the packaged service stays stopped.
command -v haproxy >/dev/null || need_apt+=(haproxy)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-deps: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# PostgreSQL: start the Debian cluster on loopback and make a ferry role.
pgver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
if [ -z "$pgver" ]; then
  echo "test-deps: no PostgreSQL cluster found under /etc/postgresql" >&2
  exit 1
fi
if ! pg_ctlcluster "$pgver" main status >/dev/null 2>&1; then
  pg_ctlcluster "$pgver" main start
fi
for _ in $(seq 1 50); do
  su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.2
done
su postgres -c "psql -qAtc \"select 1 from pg_roles where rolname='ferry'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE ferry LOGIN SUPERUSER PASSWORD 'ferry'\""
su postgres -c "psql -qAtc \"select 1 from pg_database where datname='ferry'\"" | grep -q 1 ||
  su postgres -c "createdb -O ferry ferry"

# golangci-lint, pinned; built from the Go module proxy into ./bin.
GOLANGCI_VERSION=v2.15.0
root=$(cd "$(dirname "$0")/.." && pwd)
if ! "$root/bin/golangci-lint" version 2>/dev/null | grep -q "${GOLANGCI_VERSION#v}"; then
  echo "test-deps: building golangci-lint $GOLANGCI_VERSION"
  GOBIN="$root/bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_VERSION"
fi

# gotestsum, pinned; built from the Go module proxy into ./bin. It runs the
# tests and prints a line per test and the reasons of skips.
GOTESTSUM_VERSION=v1.13.0
if ! "$root/bin/gotestsum" --version 2>/dev/null | grep -q "${GOTESTSUM_VERSION#v}"; then
  echo "test-deps: building gotestsum $GOTESTSUM_VERSION"
  GOBIN="$root/bin" go install "gotest.tools/gotestsum@$GOTESTSUM_VERSION"
fi

# versitygw, pinned: a real S3-compatible server (posix backend) for the S3
# artifact store tests, which start it from ./bin.
VERSITYGW_VERSION=v1.8.0
# (--version prints "git" for a go install build; the module version is in
# the binary's build information.)
if ! go version -m "$root/bin/versitygw" 2>/dev/null | grep -Eq "^\s+mod\s+github.com/versity/versitygw\s+$VERSITYGW_VERSION\s"; then
  echo "test-deps: building versitygw $VERSITYGW_VERSION"
  GOBIN="$root/bin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi
