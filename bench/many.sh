#!/usr/bin/env bash
# Device-extract benchmark, all in one run on one machine: a folder of many
# small files (default 100,000 of 200 B to 4 KB, about 200 MB), sent and
# fetched by exhibit over loopback QUIC, beside the same folder through
# `tar cf - DIR | rage -e` (the baseline of a send) and the round trip
# `tar | rage -e > f; rage -d f | tar x` (the baseline of send + fetch).
# Prints seconds, files/s, MB/s, peak RSS and the ratios to the baselines.
#
# Usage: bench/many.sh [FILES]          (default 100000)
# Needs about 4x the folder free under $BENCH_DIR (default /tmp/exhibit-many).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
DIR=${BENCH_DIR:-/tmp/exhibit-many}
rm -rf "$DIR" && mkdir -p "$DIR"
export PATH="$HOME/.cargo/bin:$PATH"

echo "== building (release)"
cargo build --release --locked -q --bin exhibit --bin exhibitd
BIN=$PWD/target/release
if ! command -v rage >/dev/null; then
    echo "== installing rage (cargo install)"
    cargo install --locked -q rage
fi

echo "== making $N files"
python3 - "$DIR/src/extract" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(28)
for i in range(n):
    d = os.path.join(root, f"app{i % 97:02d}", f"cache{(i // 97) % 50:02d}")
    if i < 97 * 50:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07d}.bin"), "wb") as f:
        f.write(rng.randbytes(rng.randint(200, 4000)))
PY
BYTES=$(find "$DIR/src" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
sync

. bench/server.sh
bench_server 4498
trap 'kill $SERVER 2>/dev/null || true' EXIT
rage-keygen -o "$DIR/rage.key" 2>/dev/null
R=$(grep -o 'age1[a-z0-9]*' "$DIR/rage.key" | head -1)

timed() { # command... ; sets T (seconds) and RSS (KiB)
    /usr/bin/time -f '%e %M' -o "$DIR/time.out" "$@" >"$DIR/out.txt"
    read -r T RSS <"$DIR/time.out"
}
warm() { tar cf - -C "$DIR/src" extract >/dev/null; }
HWM() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$SERVER/status"; }
row() { python3 -c "import sys; t=float(sys.argv[2]); print(f'{sys.argv[1]:<34} {t:8.2f} s {int(sys.argv[3])/t:9.0f} files/s {int(sys.argv[4])/t/1e6:7.1f} MB/s {sys.argv[5]:>12}')" "$@"; }

# Let the page cache and ext4's recently-freed inodes settle after the
# set-up's deletions, so every contender starts alike.
sync; sleep 40
echo "== $N files, $((BYTES / 1000000)) MB"
warm; timed sh -c "tar cf - -C '$DIR/src' extract | rage -e -r '$R' > '$DIR/tar.age'"; row "tar | rage -e" "$T" "$N" "$BYTES" "-"; TAR=$T
mkdir -p "$DIR/untar"
timed sh -c "rage -d -i '$DIR/rage.key' '$DIR/tar.age' | tar xf - -C '$DIR/untar'"; row "rage -d | tar x" "$T" "$N" "$BYTES" "-"
ROUND=$(python3 -c "print($TAR + $T)")
row "round trip (both)" "$ROUND" "$N" "$BYTES" "-"
warm; timed "$BIN/exhibit" --home "$DIR/alice" send "$DIR/src/extract" --to bob --yes
TID=$(cat "$DIR/out.txt"); SEND=$T
row "exhibit send" "$T" "$N" "$BYTES" "client $((RSS / 1024)) MiB"
timed "$BIN/exhibit" --home "$DIR/bob" fetch "$TID" -o "$DIR/fetched"; FETCH=$T
row "exhibit fetch" "$T" "$N" "$BYTES" "client $((RSS / 1024)) MiB"
row "exhibit send + fetch" "$(python3 -c "print($SEND + $FETCH)")" "$N" "$BYTES" "server $(HWM) MiB"
diff -r "$DIR/src/extract" "$DIR/fetched/extract" >/dev/null && echo "fetched tree is byte-identical"
X alice outbox | grep -q acknowledged && echo "receipt accepted: acknowledged"
python3 -c "import sys; s,f,t,r=map(float,sys.argv[1:]); print(f'send / (tar | rage -e): {s/t:.2f}x (target 4x)   send+fetch / round trip: {(s+f)/r:.2f}x (target 2x)')" "$SEND" "$FETCH" "$TAR" "$ROUND"
