#!/usr/bin/env bash
# Two active exhibitd nodes of one deployment, without containers or an
# orchestrator: the metadata in one PostgreSQL database, the chunks in one
# S3 bucket, the same keys and configuration on both; only the addresses
# they listen on differ. See RUNBOOK.md, "Growing past one machine".
#
# Usage: deploy/two-nodes.sh DIR POSTGRES_URL S3_ENDPOINT BUCKET NODE_A NODE_B
#   DIR           where to make the two data directories, DIR/node-a and
#                 DIR/node-b (copy each to its host, or try both on one)
#   POSTGRES_URL  postgres://user@host:port/db (add
#                 ?sslmode=require&sslrootcert=FILE beyond loopback)
#   S3_ENDPOINT   the bucket's service, e.g. https://s3.eu-west-2.amazonaws.com
#   BUCKET        an existing bucket (versioned or replicated: it is half
#                 of the backup)
#   NODE_A/B      host:port each node listens on, UDP (QUIC) and TCP alike
# Environment: EXHIBITD (default: exhibitd on PATH), NAME and NAME_B (the
# host name clients use for node A and for node B, each in its node's
# server certificate with its listen address; default localhost and
# NAME), REGION (default eu-west-2). Each node reads the bucket's credentials from
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its own environment: they
# are not written to the config.
#
# Prints the first admin's one-time enrolment code (enrol through either
# node) and the client.toml line that names both nodes. Start each node
# with `exhibitd serve --config DIR/node-X/exhibitd.toml` (on a host of its
# own: the systemd unit in this folder, its --config pointed there).
set -euo pipefail
if [ $# -ne 6 ]; then
    sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi
dir=$1 url=$2 endpoint=$3 bucket=$4 node_a=$5 node_b=$6
exhibitd=${EXHIBITD:-exhibitd}
for d in "$dir/node-a" "$dir/node-b"; do
    if [ -e "$d" ]; then
        echo "$d already exists: choose another DIR" >&2
        exit 1
    fi
done
umask 077

# Node A: the authority, the server certificate (NAME, localhost and the
# listen address), the config, the tables in PostgreSQL and the first
# admin's code.
init=$("$exhibitd" init --data "$dir/node-a" --listen "$node_a" --name "${NAME:-localhost}" --postgres "$url" --json)

# Chunks in the bucket, not on this disk; a dead node's connections found
# within 20 s (clients send keep-alives every 10 s), so clients move on
# to the other node sooner.
http=false
case "$endpoint" in http://127.* | http://localhost*) http=true ;; esac
sed -i \
    -e "s|^backend = \"disk\"\$|backend = \"s3\"\nbucket = \"$bucket\"\nendpoint = \"$endpoint\"\nregion = \"${REGION:-eu-west-2}\"\nprefix = \"chunks\"|" \
    -e "s|^allow_http = false\$|allow_http = $http|" \
    -e 's|^idle_timeout = .*|idle_timeout = "20s"|' \
    "$dir/node-a/exhibitd.toml"
rm -rf "$dir/node-a/chunks"

# Node B: the same keys and config, its own addresses, and a server
# certificate of its own from the same authority, naming them.
mkdir -p "$dir/node-b"
cp -p "$dir/node-a/"{authority.key,server.key,server.pem,ca.pem,exhibitd.toml} "$dir/node-b/"
sed -i -e "s|^listen = .*|listen = \"$node_b\"|" -e "s|^listen_tcp = .*|listen_tcp = \"$node_b\"|" \
    "$dir/node-b/exhibitd.toml"
"$exhibitd" rotate-cert --data "$dir/node-b" --name "${NAME_B:-${NAME:-localhost}}" >/dev/null

code=$(printf '%s' "$init" | sed -n 's/.*"admin_code":"\([^"]*\)".*/\1/p')
echo "node A: $exhibitd serve --config $dir/node-a/exhibitd.toml"
echo "node B: $exhibitd serve --config $dir/node-b/exhibitd.toml"
echo "first admin's enrolment code: $code"
echo "CA for every user: $dir/node-a/ca.pem"
echo "in each user's client.toml: server = \"$node_a,$node_b\""
