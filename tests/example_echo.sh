#!/usr/bin/env bash
# weft-echo driven by a real client over 127.0.0.1: echoes what it is sent
# (several messages on several connections at once), then shuts down
# cleanly on SIGTERM (exit status 0) while a client is still connected.
set -euo pipefail
. "$(dirname "$0")/example_lib.sh"
start_server "$1"
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
stop_server
echo "example_echo: ok"
