#!/usr/bin/env bash
# weft-http driven by curl and by raw requests over 127.0.0.1: 200 with the
# body, keep-alive (one connection for several requests), pipelining,
# 400 and a closed connection for garbage and for an oversized head, a
# client that leaves mid-request, then a clean shutdown on SIGTERM.
set -euo pipefail
. "$(dirname "$0")/example_lib.sh"
start_server "$1"
url=http://127.0.0.1:$port/
fail() { echo "example_http: $*" >&2; exit 1; }

[ "$(curl -s --max-time 5 "$url")" = "Hello, World!" ] || fail "GET: wrong body"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$url")
[ "$code" = 200 ] || fail "GET: status $code"
# Three requests, one connection.
out=$(curl -s --max-time 5 -w ' %{num_connects}' "$url" "${url}a" "${url}b")
[ "$out" = "Hello, World! 1Hello, World! 0Hello, World! 0" ] || fail "keep-alive: '$out'"

raw() { # request bytes; prints the whole reply (the server closes, or 2 s pass)
	exec {fd}<>"/dev/tcp/127.0.0.1/$port"
	printf '%b' "$1" >&$fd
	timeout 2 cat <&$fd || true
	exec {fd}>&-
}
n=$(raw 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.0\r\n\r\n' |
	grep -c 'HTTP/1.1 200 OK' || true)
[ "$n" = 3 ] || fail "pipelining: $n answers to 3 requests"
start=$(date +%s%N)
reply=$(raw 'BLAH\r\n\r\n')
case $reply in "HTTP/1.1 400 Bad Request"*) ;; *) fail "garbage: '$reply'" ;; esac
[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 1500 ] || fail "garbage: the connection stayed open"
reply=$(raw "GET / HTTP/1.1\r\nX: $(head -c 9000 /dev/zero | tr '\0' a)")
case $reply in "HTTP/1.1 400 Bad Request"*) ;; *) fail "oversized head: '${reply:0:80}'" ;; esac
reply=$(raw 'GET / HTTP/1.1\r\nno colon here\r\n\r\n')
case $reply in "HTTP/1.1 400 Bad Request"*) ;; *) fail "bad header line: '$reply'" ;; esac
# Leaves mid-request; the server keeps serving.
exec {fd}<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHo' >&$fd
exec {fd}>&-
[ "$(curl -s --max-time 5 "$url")" = "Hello, World!" ] || fail "after a client left mid-request"

# /metrics is a plain request unless --metrics was given.
[ "$(curl -s --max-time 5 "${url}metrics")" = "Hello, World!" ] || fail "/metrics without --metrics"

exec 4<>"/dev/tcp/127.0.0.1/$port" # stays open across the shutdown
stop_server

# With --metrics: Prometheus text, one sample per worker for worker families.
start_server "$1" --metrics
metrics=$(curl -s --max-time 5 "http://127.0.0.1:$port/metrics")
grep -q '^# TYPE weft_tasks_spawned_total counter$' <<<"$metrics" || fail "metrics: no tasks_spawned_total"
grep -q '^weft_workers 2$' <<<"$metrics" || fail "metrics: workers"
[ "$(grep -c '^weft_worker_runs{worker="[01]"} [0-9]*$' <<<"$metrics")" = 2 ] || fail "metrics: worker runs"
[ "$(curl -s --max-time 5 "http://127.0.0.1:$port/")" = "Hello, World!" ] || fail "metrics: / still answers"
stop_server
echo "example_http: ok"
