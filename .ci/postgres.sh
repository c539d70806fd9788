#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the tests (Debian's `postgresql`
# package, installed if missing): initdb + pg_ctl as the unprivileged
# `postgres` user, in a temp dir, listening on a loopback port only, with
# one database. Prints the URL for EXHIBIT_TEST_POSTGRES; the cluster is
# stopped by `pg_ctl -D DIR stop` (DIR is printed on stderr) or with the
# machine.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ]; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql) >&2
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
dir=$(mktemp -d /tmp/exhibit-pg.XXXXXX)
chown postgres "$dir"
port=${EXHIBIT_PG_PORT:-55432}
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
as_pg "$bin/initdb -D $dir/data -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
as_pg "$bin/pg_ctl -D $dir/data -l $dir/log -w -o \"-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200\" start" >/dev/null
as_pg "$bin/createdb -h 127.0.0.1 -p $port -U postgres exhibit_test"
echo "postgres cluster in $dir/data" >&2
echo "postgres://postgres@127.0.0.1:$port/exhibit_test"
