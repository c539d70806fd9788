#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the tests (Debian's `postgresql`
# package, installed if missing): initdb + pg_ctl as the unprivileged
# `postgres` user, in a temp dir, listening on a loopback port only, with
# one database, TLS on with a self-signed certificate in DIR/server.crt.
# Prints the URL for EXHIBIT_TEST_POSTGRES, a space, and the cluster's
# directory DIR; `.ci/postgres.sh stop DIR` stops it and removes DIR.
# `.ci/postgres.sh halt DIR` stops it and keeps it, `.ci/postgres.sh start
# DIR` starts it again on the same port (a database restart, for the test
# of a restart under a send).
set -euo pipefail
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
case "${1:-}" in
stop | halt | start)
    case "${2:-}" in /tmp/exhibit-pg.*) ;; *) echo "usage: $0 stop|halt|start /tmp/exhibit-pg.XXXXXX" >&2; exit 2 ;; esac
    case "$1" in
    stop)
        as_pg "$bin/pg_ctl -D $2/data -m fast stop" >/dev/null || true
        rm -rf "$2"
        ;;
    halt) as_pg "$bin/pg_ctl -D $2/data -m fast -w stop" >/dev/null ;;
    start) as_pg "$bin/pg_ctl -D $2/data -l $2/log -w -o \"$(cat "$2/options")\" start" >/dev/null ;;
    esac
    exit 0
    ;;
esac
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
# TLS too (for the sslmode=require tests): a throwaway self-signed
# certificate for localhost and 127.0.0.1, trusted by the tests through
# $dir/server.crt.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "extendedKeyUsage=serverAuth" -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null
chown postgres "$dir/server.key" "$dir/server.crt" && chmod 600 "$dir/server.key" && chmod 644 "$dir/server.crt"
echo "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" >"$dir/options"
as_pg "$bin/pg_ctl -D $dir/data -l $dir/log -w -o \"$(cat "$dir/options")\" start" >/dev/null
as_pg "$bin/createdb -h 127.0.0.1 -p $port -U postgres exhibit_test"
echo "postgres://postgres@127.0.0.1:$port/exhibit_test $dir"
