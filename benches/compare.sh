#!/usr/bin/env bash
# weft beside Tokio and Go on this machine: builds the peer programs, runs
# the scheduler workloads for weft, Tokio and Go in turn (workload by
# workload), then the servers under load (tcp_echo, http_hello: weft-echo
# and weft-http on io_uring, again on epoll as peer "weft-epoll", beside
# Tokio's and Go's), RUNS times, and prints the peers' table with weft's
# advantage over the better of the two (above 1: weft is better).
#
#   PEERS_DIR   the peers directory (default ../shared/peers)
#   RUNS        alternating runs (default 3)
#   SERVERS     0: skip the servers, and the RSS of 10,000 idle connections
#               (benches/idle_rss.sh, printed after the table) (default 1)
#   REDIS       0: skip weft-redis beside redis-server (benches/redis_compare.sh,
#               printed last) (default 1)
#   ONLY_WORKLOADS, WORKERS, WAIT_IDLE_S, LOAD_SECS   passed to the peers' run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR=${PEERS_DIR:-../shared/peers}
RUNS=${RUNS:-3}
[ -x "$PEERS_DIR/run.sh" ] || { echo "compare.sh: no $PEERS_DIR/run.sh (set PEERS_DIR)" >&2; exit 1; }
[ -x build/benches/weft-bench ] || { echo "compare.sh: build weft first (make build)" >&2; exit 1; }
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)

"$PEERS_DIR/run.sh" deps
"$PEERS_DIR/run.sh" build
mkdir -p results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
files=()
for i in $(seq "$RUNS"); do
  out="$PWD/results/compare-$stamp-$i.jsonl"
  WEFT_BUILD="$PWD/build" OUT="$out" "$PEERS_DIR/run.sh" bench >/dev/null
  if [ "${SERVERS:-1}" = 1 ]; then
    WEFT_BUILD="$PWD/build" OUT="$out" "$PEERS_DIR/run.sh" servers >/dev/null
    WEFT_BUILD="$PWD/build" OUT="$out" WEFT_IO=epoll PEERS=weft "$PEERS_DIR/run.sh" servers >/dev/null
  fi
  files+=("$out")
done
python3 "$PEERS_DIR/table.py" "${files[@]}"
if [ "${SERVERS:-1}" = 1 ]; then
  echo
  echo "RSS with 10,000 idle echo connections (benches/idle_rss.sh):"
  PEERS_DIR="$PEERS_DIR" ./benches/idle_rss.sh 10000 | tee "results/compare-$stamp-idle.jsonl"
fi
if [ "${REDIS:-1}" = 1 ]; then
  echo
  echo "weft-redis beside redis-server (benches/redis_compare.sh):"
  RUNS="$RUNS" ./benches/redis_compare.sh
fi
