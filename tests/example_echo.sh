#!/usr/bin/env bash
# weft-echo driven by a real client over 127.0.0.1: echoes what it is sent
# (several messages on several connections at once), then shuts down
# cleanly on SIGTERM (exit status 0) while a client is still connected.
set -euo pipefail
bin=$1
port=$((20000 + RANDOM % 20000))
"$bin" --port "$port" --workers 2 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.05
done
talk() { # message
	exec {fd}<>"/dev/tcp/127.0.0.1/$port"
	printf '%s' "$1" >&$fd
	local reply
	IFS= read -r -t 5 -N ${#1} reply <&$fd
	exec {fd}>&-
	[ "$reply" = "$1" ] || { echo "example_echo: sent '$1', got '$reply'" >&2; return 1; }
}
for i in $(seq 20); do talk "message $i over connection $i" & done
wait_ok=0
for job in $(jobs -p); do [ "$job" = "$pid" ] || wait "$job" || wait_ok=1; done
[ $wait_ok = 0 ] || exit 1
exec 4<>"/dev/tcp/127.0.0.1/$port" # stays open across the shutdown
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$pid" 2>/dev/null; then echo "example_echo: no shutdown on SIGTERM" >&2; exit 1; fi
wait "$pid" || { echo "example_echo: exit status $?" >&2; exit 1; }
trap - EXIT
echo "example_echo: ok"
