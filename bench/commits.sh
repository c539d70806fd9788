#!/usr/bin/env bash
# Group commit benchmark: one file of many small chunks (default 128 MB in
# 64 KiB chunks, 2,048 of them), sent and fetched over loopback QUIC by a
# server that commits per-chunk metadata together when writes arrive
# together (the default) and by one that commits each write alone
# (EXHIBITD_SERIAL_COMMITS=1, the baseline), alternately, in one run.
# Prints seconds per run and the ratio of the medians.
#
# Usage: bench/commits.sh [MB] [ROUNDS]     (defaults 128, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-128}
ROUNDS=${2:-3}
ROOT=${BENCH_DIR:-/tmp/exhibit-commits}
rm -rf "$ROOT" && mkdir -p "$ROOT"
echo "== building (release)"
cargo build --release --locked -q --bin exhibit --bin exhibitd
BIN=$PWD/target/release
head -c $((MB << 20)) /dev/urandom >"$ROOT/evidence.bin"
. bench/server.sh
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
start() { # name port serial
    DIR=$ROOT/$1
    mkdir -p "$DIR"
    EXHIBITD_SERIAL_COMMITS=$3 bench_server "$2"
    PIDS+=("$SERVER")
}
start grouped 4501 0
start serial 4502 1
one() { # name -> seconds for send + fetch
    DIR=$ROOT/$1
    local t0 t1 id
    rm -rf "$DIR/out"
    t0=$(date +%s.%N)
    id=$(X alice send "$ROOT/evidence.bin" --to bob --chunk-size 65536 --yes)
    X bob fetch "$id" -o "$DIR/out" >/dev/null
    t1=$(date +%s.%N)
    cmp -s "$ROOT/evidence.bin" "$DIR/out/evidence.bin" || { echo "fetched file differs" >&2; exit 1; }
    python3 -c "print(f'{$t1 - $t0:.2f}')"
}
G=(); S=()
for r in $(seq "$ROUNDS"); do
    G+=("$(one grouped)"); S+=("$(one serial)")
    echo "round $r: grouped ${G[-1]} s, serial ${S[-1]} s"
done
python3 - "${G[*]}" "${S[*]}" <<'PY'
import statistics, sys
g = statistics.median(map(float, sys.argv[1].split()))
s = statistics.median(map(float, sys.argv[2].split()))
print(f"median send+fetch: grouped {g:.2f} s, serial {s:.2f} s; grouped/serial = {g / s:.2f}x")
PY
