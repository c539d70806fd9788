#!/usr/bin/env bash
# QUIC against TLS over TCP (h2 streams) on loopback: the same file sent
# and fetched over each transport in turn, alternating, with the time,
# MiB/s and client CPU of each, and the TCP/QUIC ratio of the medians.
#
# Usage: bench/transports.sh [SIZE_MIB [ROUNDS]]   (default: 1024 3)
# Needs ~3x SIZE free under $BENCH_DIR (default /tmp/exhibit-bench-reach).
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
ROUNDS=${2:-3}
DIR=${BENCH_DIR:-/tmp/exhibit-bench-reach}
rm -rf "$DIR" && mkdir -p "$DIR"
export PATH="$HOME/.cargo/bin:$PATH"

echo "== building (release)"
cargo build --release --locked -q --bin exhibit --bin exhibitd
BIN=$PWD/target/release
. bench/server.sh
bench_server 4498
trap 'kill $SERVER 2>/dev/null || true' EXIT

F=$DIR/file.bin
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$F"
timed() { # command... ; sets T (seconds) and CPU (user + system seconds)
    /usr/bin/time -f '%e %U %S' -o "$DIR/time.out" "$@" >/dev/null
    read -r T U S <"$DIR/time.out"
    CPU=$(python3 -c "print(f'{$U + $S:.2f}')")
}
printf '%-6s %-6s %-6s %9s %8s %10s\n' round what via seconds MiB/s "client CPU s"
for r in $(seq "$ROUNDS"); do
    # Alternate which goes first, so neither always gets the cooler cache.
    order="quic tcp"; [ $((r % 2)) = 0 ] && order="tcp quic"
    for t in $order; do
        cat "$F" >/dev/null
        timed "$BIN/exhibit" --home "$DIR/alice" --transport "$t" send "$F" --to bob --json
        printf '%-6s %-6s %-6s %9s %8s %10s\n' "$r" send "$t" "$T" "$(python3 -c "print(f'{$MIB/$T:.0f}')")" "$CPU"
        echo "send $t $T" >>"$DIR/results"
        TID=$(X alice outbox --json | python3 -c "import json,sys;print(json.load(sys.stdin)[0]['transfer'])")
        rm -rf "$DIR/out"
        timed "$BIN/exhibit" --home "$DIR/bob" --transport "$t" fetch "$TID" -o "$DIR/out" --json
        printf '%-6s %-6s %-6s %9s %8s %10s\n' "$r" fetch "$t" "$T" "$(python3 -c "print(f'{$MIB/$T:.0f}')")" "$CPU"
        echo "fetch $t $T" >>"$DIR/results"
        cmp "$F" "$DIR/out/file.bin" || { echo "MISMATCH"; exit 1; }
        rm -rf "$DIR/out"
    done
done
python3 - "$DIR/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for what in ("send", "fetch"):
    q = statistics.median(float(t) for w, v, t in rows if w == what and v == "quic")
    c = statistics.median(float(t) for w, v, t in rows if w == what and v == "tcp")
    print(f"{what}: median QUIC {q:.2f} s, TCP {c:.2f} s; TCP takes {c / q:.2f}x QUIC's time ({q / c:.2f} of its rate)")
PY
