#!/usr/bin/env bash
# RSS of an echo server holding N idle connections (default 10,000), each
# after one round trip: weft-echo on io_uring and on epoll, tokio-echo and
# go-echo from ../shared/peers when built. One JSON line per server:
#   {"workload":"idle_rss","peer":...,"conns":N,"rss_kb":...,"rss_kb_before":...}
#
#   benches/idle_rss.sh [N]     (PEERS_DIR, BUILD as in compare.sh)
# The server needs N+ descriptors: each is started with the soft
# RLIMIT_NOFILE raised to the hard limit (20,000 on these machines).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
BUILD=${BUILD:-build}
PEERS_DIR=${PEERS_DIR:-../shared/peers}
PORT=${IDLE_PORT:-17011}
client=$BUILD/benches/idle-client
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

measure() { # peer command...
	local peer=$1
	shift
	ulimit -n "$(ulimit -Hn)"
	"$@" >/dev/null 2>&1 &
	local pid=$! before
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
		sleep 0.05
	done
	sleep 0.2
	before=$(rss_kb "$pid")
	coproc CLIENT { "$client" "$PORT" "$N"; }
	local line
	read -r line <&"${CLIENT[0]}" || line=""
	if [ "$line" = "ready $N" ]; then
		sleep 0.5
		printf '{"workload":"idle_rss","peer":"%s","conns":%d,"rss_kb":%d,"rss_kb_before":%d}\n' \
			"$peer" "$N" "$(rss_kb "$pid")" "$before"
	else
		echo "idle_rss: $peer: the client did not get $N connections up" >&2
	fi
	exec {CLIENT[1]}>&-
	wait "$CLIENT_PID" || true
	kill -INT "$pid" 2>/dev/null || true
	sleep 0.3
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

measure weft env WEFT_IO=uring "$BUILD/examples/weft-echo" --port "$PORT" --workers 2
measure weft-epoll env WEFT_IO=epoll "$BUILD/examples/weft-echo" --port "$PORT" --workers 2
tokio=$PEERS_DIR/tokio/target/release/tokio-echo
[ ! -x "$tokio" ] || measure tokio "$tokio" --port "$PORT" --workers 2
go=$PEERS_DIR/go/bin/go-echo
[ ! -x "$go" ] || measure go "$go" --port "$PORT" --workers 2
