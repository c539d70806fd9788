#!/usr/bin/env bash
# Several nodes on PostgreSQL against the embedded default, in one run on
# one machine:
#   small-transfer throughput (1 KiB send + fetch + receipt, 64 pairs of
#   users at once): redb on one node, PostgreSQL on one node, PostgreSQL on
#   two nodes (tests/benches/nodes.rs), with the ratios;
#   the alert scan over 1,000,000 transfers with 1,000 due, on redb and on
#   PostgreSQL (server/benches/alert_scan.rs).
# A throwaway PostgreSQL cluster is started for it (.ci/postgres.sh, which
# installs Debian's package if missing) and removed afterwards.
#
# Usage: bench/nodes.sh            (EXHIBIT_BENCH_CLIENTS, EXHIBIT_BENCH_ROUNDS,
#                                   EXHIBIT_BENCH_N change the load)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
pg=$(.ci/postgres.sh)
trap '.ci/postgres.sh stop "${pg#* }"' EXIT
export EXHIBIT_BENCH_POSTGRES=${pg% *}

echo "== building (bench profile)"
cargo bench --locked -q --no-run -p exhibit-tests --bench nodes -p exhibit-server --bench alert_scan 2>/dev/null
echo "== small transfers: redb one node, PostgreSQL one node, PostgreSQL two nodes"
cargo bench --locked -q -p exhibit-tests --bench nodes 2>/dev/null
echo "== alert scan, redb"
EXHIBIT_BENCH_POSTGRES='' cargo bench --locked -q -p exhibit-server --bench alert_scan 2>/dev/null
echo "== alert scan, PostgreSQL"
cargo bench --locked -q -p exhibit-server --bench alert_scan 2>/dev/null
