#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the tests (Debian's `postgresql`
# package, installed if missing): initdb + pg_ctl as the unprivileged
# `postgres` user, in a temp dir, listening on a loopback port only, with
# one database. Prints the URL for EXHIBIT_TEST_POSTGRES, a space, and the
# cluster's directory; `.ci/postgres.sh stop DIR` stops it and removes DIR.
set -euo pipefail
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ "${1:-}" = stop ]; then
    case "${2:-}" in /tmp/exhibit-pg.*) ;; *) echo "usage: $0 stop /tmp/exhibit-pg.XXXXXX" >&2; exit 2 ;; esac
    as_pg "$bin/pg_ctl -D $2/data -m fast stop" >/dev/null || true
    rm -rf "$2"
    exit 0
fi
if [ -z "$bin" ]; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql) >&2
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
dir=$(mktemp -d /tmp/exhibit-pg.XXXXXX)
chown postgres "$dir"
# A free loopback port.
port=${EXHIBIT_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
as_pg "$bin/initdb -D $dir/data -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
as_pg "$bin/pg_ctl -D $dir/data -l $dir/log -w -o \"-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200\" start" >/dev/null
as_pg "$bin/createdb -h 127.0.0.1 -p $port -U postgres exhibit_test"
echo "postgres://postgres@127.0.0.1:$port/exhibit_test $dir"
