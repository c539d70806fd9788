#!/usr/bin/env bash
# Cost of the server's check of each chunk it serves (issue 25): one file
# (default 1 GiB, 4 MiB chunks) sent to each of two servers and fetched
# back, alternately, each round a new transfer (only the fetch is timed): one checks every chunk against its id as
# it reads it (the default), one serves chunks unchecked
# (EXHIBITD_UNCHECKED_READS=1, the baseline: what the server did before).
# Prints each fetch's MiB/s and the server's CPU seconds for it, the
# medians, and the ratio checked/unchecked.
#
# Usage: bench/checked.sh [MB] [ROUNDS]     (defaults 1024, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-1024}
ROUNDS=${2:-5}
ROOT=${BENCH_DIR:-/tmp/exhibit-checked}
rm -rf "$ROOT" && mkdir -p "$ROOT"
echo "== building (release)"
cargo build --release --locked -q --bin exhibit --bin exhibitd
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
head -c $((MB << 20)) /dev/urandom >"$ROOT/evidence.bin"
. bench/server.sh
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
declare -A PID
start() { # name port unchecked
    DIR=$ROOT/$1
    mkdir -p "$DIR"
    EXHIBITD_UNCHECKED_READS=$3 bench_server "$2"
    PIDS+=("$SERVER")
    PID[$1]=$SERVER
}
start checked 4601 0
start unchecked 4602 1
cpu() { # pid -> user+system seconds so far
    awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"
}
one() { # name -> "MiB/s server-cpu-s"
    DIR=$ROOT/$1
    local t0 t1 c0 c1
    rm -rf "$DIR/out"
    local id
    id=$(X alice send "$ROOT/evidence.bin" --to bob)
    sync
    c0=$(cpu "${PID[$1]}")
    t0=$(date +%s.%N)
    X bob fetch "$id" -o "$DIR/out" >/dev/null
    t1=$(date +%s.%N)
    c1=$(cpu "${PID[$1]}")
    cmp -s "$ROOT/evidence.bin" "$DIR/out/evidence.bin" || { echo "fetched file differs" >&2; exit 1; }
    python3 -c "print(f'{$MB / ($t1 - $t0):.0f} {$c1 - $c0:.2f}')"
}
C=(); U=(); CC=(); UC=()
for r in $(seq "$ROUNDS"); do
    read -r m c <<<"$(one checked)"; C+=("$m"); CC+=("$c")
    read -r m c <<<"$(one unchecked)"; U+=("$m"); UC+=("$c")
    echo "round $r: checked ${C[-1]} MiB/s (server ${CC[-1]} CPU s), unchecked ${U[-1]} MiB/s (server ${UC[-1]} CPU s)"
done
python3 - "${C[*]}" "${U[*]}" "${CC[*]}" "${UC[*]}" "$MB" <<'PY'
import statistics, sys
c, u, cc, uc = (statistics.median(map(float, a.split())) for a in sys.argv[1:5])
gib = float(sys.argv[5]) / 1024
print(f"median fetch: checked {c:.0f} MiB/s, unchecked {u:.0f} MiB/s; checked/unchecked = {c / u:.2f}x")
print(f"server CPU per GiB fetched: checked {cc / gib:.2f} s, unchecked {uc / gib:.2f} s")
PY
