#!/usr/bin/env bash
# Throughput and memory benchmark, all in one run on one machine:
#   b3sum and `rage -e` on the same file (the crypto alone), scp to
#   127.0.0.1 (if an sshd can be started), and exhibit send and fetch over
#   loopback QUIC and then over TLS on TCP (the same file, the same server);
#   MiB/s for each, ratios exhibit/rage, exhibit/scp and TCP/QUIC, and peak
#   RSS of client and server.
#
# Usage: bench/run.sh [SIZE_MIB ...]     (default: 1024 4096)
# Needs ~5x the largest size free under $BENCH_DIR (default /tmp/exhibit-bench):
# the file, the server's copy of each transport's send, the fetched copy
# and the disk rows' scratch file.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1024 4096}")
read -r -a SIZES <<<"${SIZES[*]}"
DIR=${BENCH_DIR:-/tmp/exhibit-bench}
rm -rf "$DIR" && mkdir -p "$DIR"
export PATH="$HOME/.cargo/bin:$PATH"

echo "== building (release)"
cargo build --release --locked -q --bin exhibit --bin exhibitd
# The CPU a send cannot avoid on this machine (proto/benches/floor.rs).
echo "== measuring the floor: the crypto and copies every byte of a send needs"
cargo bench --locked -q -p exhibit-proto --bench floor 2>/dev/null | tee "$DIR/floor.out" | sed 's/^/  /'
read -r _ FLOOR_CPU CORES FLOOR_S < <(grep '^floor ' "$DIR/floor.out")
BIN=$PWD/target/release
for tool in b3sum rage; do
    if ! command -v "$tool" >/dev/null; then
        echo "== installing $tool (cargo install)"
        cargo install --locked -q "$tool"
    fi
done

# An sshd on a private port with throwaway keys, if one can be had.
SCP=no
if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq openssh-server >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null 2>&1)) || true
fi
if [ -x /usr/sbin/sshd ]; then
    mkdir -p "$DIR/ssh" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/host" <<<y >/dev/null
    ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/user" <<<y >/dev/null
    cp "$DIR/ssh/user.pub" "$DIR/ssh/authorized_keys"
    cat >"$DIR/ssh/sshd_config" <<CFG
Port 2222
ListenAddress 127.0.0.1
HostKey $DIR/ssh/host
AuthorizedKeysFile $DIR/ssh/authorized_keys
PasswordAuthentication no
StrictModes no
PidFile $DIR/ssh/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
CFG
    if /usr/sbin/sshd -f "$DIR/ssh/sshd_config"; then
        SCP=yes
        trap 'kill $(cat "$DIR/ssh/sshd.pid") 2>/dev/null || true' EXIT
    fi
fi

# Server and two users.
. bench/server.sh
bench_server 4499
trap 'kill $SERVER 2>/dev/null || true; [ -f "$DIR/ssh/sshd.pid" ] && kill $(cat "$DIR/ssh/sshd.pid") 2>/dev/null || true' EXIT

secs() { python3 -c "import sys;print(f'{float(sys.argv[1]):.2f}')" "$1"; }
rate() { python3 -c "import sys;print(f'{float(sys.argv[1])/float(sys.argv[2]):.0f}')" "$1" "$2"; }
# Every reader of the test file gets it from the page cache: this VM's host
# reclaims the guest's cache within seconds (a third of a 4 GiB file in
# 30 s), and a send that reads from the disk the server writes to measures
# the disk, not the pipeline.
warm() { cat "$1" >/dev/null; }
timed() { # command... ; sets T (seconds), RSS (KiB) and CPU (user + system seconds)
    /usr/bin/time -f '%e %M %U %S' -o "$DIR/time.out" "$@" >/dev/null
    read -r T RSS U S <"$DIR/time.out"
    CPU=$(python3 -c "print($U + $S)")
}
# The server's CPU seconds so far (user + system), from /proc.
HZ=$(getconf CLK_TCK)
server_cpu() { awk -v hz="$HZ" '{print ($14 + $15) / hz}' "/proc/$SERVER/stat"; }
# CPU seconds per GiB: steadier than the rates on a shared host.
per_gib() { python3 -c "import sys;print(f'{float(sys.argv[1])*1024/float(sys.argv[2]):.2f}')" "$1" "$MIB"; }
# Milliseconds the disk under $DIR has been busy (io_ticks in
# /proc/diskstats), or nothing where it is not a block device (tmpfs).
DEV=$(basename "$(df --output=source "$DIR" | tail -1)")
disk_ms() { awk -v d="$DEV" '$3 == d {print $13}' /proc/diskstats; }
# The share of the last timed command the disk was busy, given disk_ms from
# before it.
busy() { local ms; ms=$(disk_ms); [ -n "$ms" ] && [ -n "$1" ] && python3 -c "print(f'{($ms - $1) / 10 / $T:.0f}%')"; }

printf '\n%-8s %-18s %10s %10s %12s %10s\n' size what seconds MiB/s "peak RSS MiB" "CPU s/GiB"
for MIB in "${SIZES[@]}"; do
    F=$DIR/file-$MIB.bin
    head -c $((MIB * 1024 * 1024)) /dev/urandom >"$F"
    sync
    row() { printf '%-8s %-18s %10s %10s %12s %10s\n' "${MIB}M" "$1" "$(secs "$T")" "$(rate "$MIB" "$T")" "$((RSS / 1024))" "$(per_gib "$CPU")"; }
    warm "$F"; timed b3sum "$F"; row b3sum; B3=$T
    # rage's recipient: a fresh X25519 key (the construction exhibit uses).
    [ -f "$DIR/rage.key" ] || rage-keygen -o "$DIR/rage.key" 2>/dev/null
    R=$(grep -o 'age1[a-z0-9]*' "$DIR/rage.key" | head -1)
    warm "$F"; timed rage -e -r "$R" -o /dev/null "$F"; row "rage -e"; RAGE=$T
    if [ "$SCP" = yes ]; then
        warm "$F"
        if timed scp -q -P 2222 -i "$DIR/ssh/user" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
            -o BatchMode=yes "$F" "$(id -un)@127.0.0.1:$DIR/scp-copy.bin"; then
            row "scp"; SCPT=$T
        else
            echo "  (scp failed; skipped)"; SCP=no
        fi
        rm -f "$DIR/scp-copy.bin"
    fi
    # QUIC (the rows the rage and scp ratios, CPU and memory lines below
    # are about), then TLS over TCP with h2 streams: the same file.
    warm "$F"; C0=$(server_cpu); D0=$(disk_ms)
    timed "$BIN/exhibit" --home "$DIR/alice" --transport quic send "$F" --to bob --json --yes
    row "exhibit send"; SEND=$T; SEND_RSS=$RSS; SEND_CPU=$CPU; SEND_SRV=$(python3 -c "print($(server_cpu) - $C0)")
    SEND_BUSY=$(busy "$D0" || true)
    TID=$(X alice outbox --json | python3 -c "import json,sys;print(json.load(sys.stdin)[0]['transfer'])")
    rm -rf "$DIR/out"
    C0=$(server_cpu); D0=$(disk_ms)
    timed "$BIN/exhibit" --home "$DIR/bob" --transport quic fetch "$TID" -o "$DIR/out" --json
    row "exhibit fetch"; FETCH=$T; FETCH_RSS=$RSS; FETCH_SRV=$(python3 -c "print($(server_cpu) - $C0)")
    FETCH_BUSY=$(busy "$D0" || true)
    cmp "$F" "$DIR/out/file-$MIB.bin" || { echo "MISMATCH"; exit 1; }
    rm -rf "$DIR/out"
    warm "$F"
    timed "$BIN/exhibit" --home "$DIR/alice" --transport tcp send "$F" --to bob --json --yes
    row "send over TCP"; TCP_SEND=$T
    TID=$(X alice outbox --json | python3 -c "import json,sys;print(json.load(sys.stdin)[0]['transfer'])")
    timed "$BIN/exhibit" --home "$DIR/bob" --transport tcp fetch "$TID" -o "$DIR/out" --json
    row "fetch over TCP"; TCP_FETCH=$T
    cmp "$F" "$DIR/out/file-$MIB.bin" || { echo "MISMATCH"; exit 1; }
    rm -rf "$DIR/out"
    # A fetch on one machine reads every chunk (server) and writes every
    # byte (client) on the same disk at once: what the disk does for that,
    # with dd, O_DIRECT, 4 MiB blocks, four readers and four writers (a
    # fetch keeps eight chunks in flight), each on a quarter of the file.
    Q=$((MIB / 16))
    DD="for i in 0 1 2 3; do dd if='$F' of=/dev/null bs=4M skip=\$((i * $Q)) count=$Q iflag=direct status=none &
        dd if=/dev/zero of='$DIR/dd.out' bs=4M seek=\$((i * $Q)) count=$Q oflag=direct conv=notrunc,fsync status=none & done; wait"
    if timed bash -c "$DD" 2>/dev/null; then
        row "disk read+write"; DISK=$T
        echo "  fetch/disk $(python3 -c "print(f'{$DISK/$FETCH:.2f}')")  (the disk's rate reading and writing at once bounds a fetch on one disk)"
    fi
    rm -f "$DIR/dd.out"
    # A send writes every byte to the server's store, durably, with eight
    # chunks in flight: dd does the same, eight writers, O_DIRECT, 4 MiB
    # blocks, fsynced (the client's reads come from the page cache).
    Q=$((MIB / 32))
    DD="for i in 0 1 2 3 4 5 6 7; do
        dd if=/dev/zero of='$DIR/dd.out' bs=4M seek=\$((i * $Q)) count=$Q oflag=direct conv=notrunc,fsync status=none & done; wait"
    if timed bash -c "$DD" 2>/dev/null; then
        row "disk write"; DISKW=$T
        echo "  send/disk write $(python3 -c "print(f'{$DISKW/$SEND:.2f}')")  (writing the file durably bounds a send on one disk)"
    fi
    rm -f "$DIR/dd.out"
    [ -n "$SEND_BUSY" ] && echo "  the disk ($DEV) was busy for $SEND_BUSY of the send and $FETCH_BUSY of the fetch"
    SRV_RSS=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status)
    echo "  ratios: send/rage $(python3 -c "print(f'{$RAGE/$SEND:.2f}')")  fetch/rage $(python3 -c "print(f'{$RAGE/$FETCH:.2f}')")  (>= 0.60 is the target; rate ratios)"
    if [ "$SCP" = yes ]; then
        echo "  ratios: send/scp $(python3 -c "print(f'{$SCPT/$SEND:.2f}')")  fetch/scp $(python3 -c "print(f'{$SCPT/$FETCH:.2f}')")  (> 1 is faster than scp)"
    fi
    echo "  TCP/QUIC: send $(python3 -c "print(f'{$SEND/$TCP_SEND:.2f}')")  fetch $(python3 -c "print(f'{$FETCH/$TCP_FETCH:.2f}')")  (rate ratios; target >= 0.8)"
    if [ "$SCP" = yes ]; then
        echo "  TCP/scp: send $(python3 -c "print(f'{$SCPT/$TCP_SEND:.2f}')")  fetch $(python3 -c "print(f'{$SCPT/$TCP_FETCH:.2f}')")  (rate ratios; target >= 2)"
    fi
    echo "  server CPU s/GiB: send $(per_gib "$SEND_SRV"), fetch $(per_gib "$FETCH_SRV") (the rows above are the client's)"
    SEND_ALL=$(python3 -c "print(($SEND_CPU + $SEND_SRV) * 1024 / $MIB)")
    echo "  send: client + server $(secs "$SEND_ALL") CPU s/GiB, $(python3 -c "print(f'{$SEND_ALL/$FLOOR_CPU:.2f}')")x the floor of $FLOOR_CPU;" \
        "at the floor on $CORES cores a send would take $FLOOR_S s/GiB, $(python3 -c "print(f'{$RAGE*1024/$MIB/$FLOOR_S:.2f}')") of rage's rate"
    echo "  peak RSS: client send $((SEND_RSS / 1024)) MiB, fetch $((FETCH_RSS / 1024)) MiB, server so far ${SRV_RSS} MiB (target < 256)"
    rm -rf "$DIR/out" "$F"
done
