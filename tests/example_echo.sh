#!/usr/bin/env bash
# weft-echo driven by a real client over 127.0.0.1: echoes what it is sent
# (several messages on several connections at once), then shuts down
# cleanly on SIGTERM (exit status 0) while a client is still connected.
set -euo pipefail
bin=$1
log=$(mktemp)
"$bin" --port 0 --workers 2 2>"$log" & # it prints the port it got
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; cat "$log" >&2; rm -f "$log"' EXIT
port=
for _ in $(seq 200); do
	port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$log")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { echo "example_echo: the server did not start" >&2; exit 1; }
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
cat "$log" >&2 # sanitizer reports, if any, reach ctest
rm -f "$log"
echo "example_echo: ok"
