# Sourced by the example tests: start_server BIN starts an example server
# on a free port (it prints the one it got) and sets $pid, $port and $log;
# stop_server sends SIGTERM and checks the exit is prompt and clean.
start_server() { # binary [more arguments]
	log=$(mktemp)
	"$@" --port 0 --workers 2 2>"$log" &
	pid=$!
	trap 'kill -9 $pid 2>/dev/null || true; cat "$log" >&2; rm -f "$log"' EXIT
	port=
	for _ in $(seq 200); do
		port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$log")
		[ -n "$port" ] && break
		sleep 0.05
	done
	[ -n "$port" ] || { echo "$(basename "$1"): the server did not start" >&2; exit 1; }
}

stop_server() {
	kill -TERM "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$pid" 2>/dev/null; then echo "no shutdown on SIGTERM" >&2; exit 1; fi
	wait "$pid" || { echo "exit status $?" >&2; exit 1; }
	trap - EXIT
	cat "$log" >&2 # sanitizer reports, if any, reach ctest
	rm -f "$log"
}
