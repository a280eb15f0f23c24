#!/usr/bin/env bash
# Makes sure the shared-backend suites have PostgreSQL's server binaries (initdb, postgres). The harness
# (test/support/postgres.ts) starts its own throwaway cluster in a temp folder on a free port; this only installs.
# Installs Debian's package when missing and the machine allows it (root + apt-get); otherwise fails with the fix.
set -euo pipefail

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
}

bindir=$(find_bindir)
if [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ]; then
  echo "PostgreSQL: $bindir ($("$bindir/postgres" --version))"
  exit 0
fi

if [ -n "${PG_BINDIR:-}" ]; then
  echo "PG_BINDIR=$PG_BINDIR holds no initdb and postgres. Fix the path or unset it to use Debian's package." >&2
  exit 1
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL is missing: installing Debian's package (apt-get install postgresql)…"
  export DEBIAN_FRONTEND=noninteractive
  # The tests start their own clusters: the package need not create and start a system-wide one.
  mkdir -p /etc/postgresql-common
  [ -e /etc/postgresql-common/createcluster.conf ] || echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bindir=$(find_bindir)
  echo "PostgreSQL: $bindir ($("$bindir/postgres" --version))"
  exit 0
fi

cat >&2 <<'MSG'
The shared-backend tests need PostgreSQL's server (initdb and postgres), and it is not installed.
Install it, then run the tests again:
  Debian/Ubuntu:  sudo apt-get install -y postgresql
  elsewhere:      install PostgreSQL 13 or newer and set PG_BINDIR to the folder holding initdb
(The tests start a throwaway server of their own; they never touch a running one.)
MSG
exit 1
