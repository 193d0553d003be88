#!/usr/bin/env bash
# Best effort: make Debian's PostgreSQL server binaries available for tests/server/test_postgres_server.py.
#
# * a quick no-op when initdb/pg_ctl are already there (PATH or /usr/lib/postgresql/*/bin);
# * otherwise, as root with apt-get: `apt-get install -y postgresql` without creating or starting
#   Debian's default cluster (the test starts its own throwaway cluster on 127.0.0.1);
# * never fails: without root, apt or the package the test skips and says why.
# Idempotent: run it as often as you like. CI calls it from .ci/run before `make test`.
set -u

have_pg() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null 2>&1
}

if have_pg; then
  echo "install-postgres: PostgreSQL server binaries already present"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "install-postgres: not root; skipping (install 'postgresql' to run tests/server/test_postgres_server.py)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postgres: no apt-get on this machine; skipping"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# No default cluster: nothing listens on 5432 after the install, the test makes its own.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
  mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
fi
if apt-get update -qq &&
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold postgresql; then
  have_pg && echo "install-postgres: installed" && exit 0
fi
echo "install-postgres: could not install PostgreSQL; tests/server/test_postgres_server.py will skip"
exit 0
