#!/usr/bin/env bash
# weft-redis driven by redis-cli (Debian's redis-tools) and by raw bytes
# over 127.0.0.1: every command, expiry (lazy and by the expiry tasks),
# pub/sub across two clients, pipelining, bad input (the replies real
# Redis gives), a client that stalls or leaves mid-pipeline, a shutdown
# that answers what was asked first.
set -euo pipefail
. "$(dirname "$0")/example_lib.sh"
command -v redis-cli >/dev/null || { echo "example_redis: no redis-cli (scripts/deps.sh)" >&2; exit 1; }
start_server "$1" --outbox 64
fail() { echo "example_redis: $*" >&2; exit 1; }
cli() { timeout 10 redis-cli -p "$port" "$@"; }
expect() { # expected, command...
	local want=$1
	shift
	local got
	got=$(cli "$@" 2>&1) || true
	[ "$got" = "$want" ] || fail "$*: got '$got', want '$want'"
}
# Waits (at most 10 s) until a command prints what is wanted.
eventually() { # expected, command...
	local want=$1
	shift
	for _ in $(seq 200); do
		[ "$(cli "$@" 2>&1)" = "$want" ] && return 0
		sleep 0.05
	done
	fail "$*: never printed '$want'"
}
raw() { # request bytes; prints the reply (until the server closes, or 2 s)
	exec {fd}<>"/dev/tcp/127.0.0.1/$port"
	printf '%b' "$1" >&$fd
	timeout 2 cat <&$fd || true
	exec {fd}>&-
}
crlf() { tr -d '\r'; }

# ---------------------------------------------------------------- commands
expect PONG ping
expect hello ping hello
expect "hi there" echo "hi there"
expect OK set k v
expect v get k
expect "" get missing
expect "" set k w nx
expect OK set k w xx
expect "" set nokey v xx
expect OK set n 10 nx
expect 11 incr n
expect 9 decrby n 2
expect 8 decr n
expect 108 incrby n 100
expect "ERR value is not an integer or out of range" incr k
expect "ERR increment or decrement would overflow" incrby n 9223372036854775807
expect 2 exists k n
expect 3 exists k k n
expect 1 del k
expect 0 del k
expect OK mset a 1 b 2 c 3
expect "$(printf '1\n2\n\n3')" mget a b zz c
got=$(cli keys '[ab]' | sort | tr '\n' ' ')
[ "$got" = "a b " ] || fail "keys [ab]: '$got'"
expect "" keys 'nomatch*'
got=$(cli keys '*' | sort | tr '\n' ' ')
[ "$got" = "a b c n " ] || fail "keys *: '$got'"
expect 4 dbsize
expect OK client setname tester
expect OK select 0
got=$(cli command count)
[ "$got" -gt 20 ] || fail "command count: '$got'"
expect OK flushall
expect 0 dbsize

# ------------------------------------------------------------------ expiry
expect OK set t v ex 100
got=$(cli ttl t)
[ "$got" -ge 99 ] && [ "$got" -le 100 ] || fail "ttl: $got"
expect -2 ttl missing
expect OK set p v
expect -1 ttl p
expect 1 expire p 100
expect 1 pexpire p 50
eventually "" get p # lazily: the read finds it expired
expect OK set q v px 50
eventually 1 dbsize # the expiry task deletes q without anyone reading it (t stays)
expect 1 expire t -1
expect 0 exists t
expect "ERR invalid expire time in 'set' command" set x v ex 0
expect "ERR syntax error" set x v ex 10 px 10

# ----------------------------------------------------------------- pub/sub
sub_out=$(mktemp)
timeout 20 redis-cli -p "$port" subscribe news >"$sub_out" &
sub_pid=$!
psub_out=$(mktemp)
timeout 20 redis-cli -p "$port" psubscribe 'n*' >"$psub_out" &
psub_pid=$!
eventually 2 publish news warmup # both subscribed
expect 2 publish news "hello world"
expect 1 publish nope "for the pattern"
expect 0 publish other x
for _ in $(seq 100); do grep -q "for the pattern" "$psub_out" && break; sleep 0.05; done
grep -q "hello world" "$sub_out" || fail "subscriber: $(cat "$sub_out")"
grep -q "for the pattern" "$psub_out" || fail "pattern subscriber: $(cat "$psub_out")"
grep -q "pmessage" "$psub_out" || fail "no pmessage: $(cat "$psub_out")"
kill "$sub_pid" "$psub_pid" 2>/dev/null || true
wait "$sub_pid" "$psub_pid" 2>/dev/null || true
rm -f "$sub_out" "$psub_out"
eventually 0 publish news gone # the subscribers left: nobody receives
# A subscriber that never reads: once its socket and its outbox (64
# messages here) are full it is cut off; the publisher never waits for it.
exec {deafsub}<>"/dev/tcp/127.0.0.1/$port"
printf 'SUBSCRIBE flood\r\n' >&$deafsub
eventually 1 publish flood warmup
cmds=$(mktemp)
payload=$(head -c 65536 /dev/zero | tr '\0' p)
for i in $(seq 600); do printf '*3\r\n$7\r\nPUBLISH\r\n$5\r\nflood\r\n$65536\r\n%s\r\n' "$payload"; done >"$cmds"
got=$(timeout 30 redis-cli -p "$port" --pipe <"$cmds" | tail -1)
rm -f "$cmds"
[ "$got" = "errors: 0, replies: 600" ] || fail "flooding publisher: '$got'"
eventually 0 publish flood after # the deaf subscriber was disconnected
exec {deafsub}>&-
reply=$(raw 'SUBSCRIBE c1\r\nGET x\r\nUNSUBSCRIBE\r\nPING\r\nQUIT\r\n' | crlf)
want=$(printf '%s\n' '*3' '$9' subscribe '$2' c1 ':1' \
	"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context" \
	'*3' '$11' unsubscribe '$2' c1 ':0' '+PONG' '+OK')
[ "$reply" = "$want" ] || fail "subscribed mode: '$reply'"

# --------------------------------------------------------------- pipelining
cmds=$(mktemp)
for i in $(seq 10000); do printf 'SET key:%d %d\r\n' "$i" "$i"; done >"$cmds"
got=$(timeout 20 redis-cli -p "$port" --pipe <"$cmds" | tail -1)
[ "$got" = "errors: 0, replies: 10000" ] || fail "--pipe: '$got'"
rm -f "$cmds"
expect 10000 dbsize
expect 777 get key:777
reply=$(raw '*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\nPING\r\nQUIT\r\n' | crlf)
[ "$reply" = "$(printf '+PONG\n$3\nabc\n+PONG\n+OK')" ] || fail "raw pipeline: '$reply'"
# A pipeline cut off by the client: the server carries on.
exec {fd}<>"/dev/tcp/127.0.0.1/$port"
for i in $(seq 2000); do printf 'INCR cut\r\n'; done >&$fd
printf '*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$10\r\nabc' >&$fd
exec {fd}>&-
got=$(cli get cut)
[ "$got" -le 2000 ] || fail "cut pipeline: $got"
expect "" get z

# ---------------------------------------------------------------- bad input
bad() { # bytes, expected reply
	local got
	got=$(raw "$1" | crlf)
	[ "$got" = "$2" ] || fail "bad input '$1': got '$got', want '$2'"
}
bad '*x\r\n' '-ERR Protocol error: invalid multibulk length'
bad '*1\r\nx\r\n' "-ERR Protocol error: expected '\$', got 'x'"
bad '*1\r\n$-5\r\n' '-ERR Protocol error: invalid bulk length'
bad '*1\r\n$600000000\r\n' '-ERR Protocol error: invalid bulk length' # > 512 MB
bad 'set "foo bar\r\n' '-ERR Protocol error: unbalanced quotes in request'
bad 'FOO a b\r\nQUIT\r\n' "$(printf '%s\n' "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' " '+OK')"
bad 'GET\r\nQUIT\r\n' "$(printf '%s\n' "-ERR wrong number of arguments for 'get' command" '+OK')"
bad 'MSET a 1 b\r\nQUIT\r\n' "$(printf '%s\n' "-ERR wrong number of arguments for 'mset' command" '+OK')"
bad 'SET a b NX XX\r\nQUIT\r\n' "$(printf '%s\n' '-ERR syntax error' '+OK')"
# An inline request past 64 KiB without a newline.
bad "$(head -c 70000 /dev/zero | tr '\0' a)" '-ERR Protocol error: too big inline request'
# Binary garbage: as Redis, bytes after a NUL are not a line yet.
reply=$(raw '\x00\x01\x02\xff\xfe\r\n')
[ -z "$reply" ] || fail "binary garbage: '$reply'"
expect PONG ping

# ------------------------------------------------- clients that hold on
# One client stalls mid-command, another sends a large value slowly; the
# others are served meanwhile.
exec {stall}<>"/dev/tcp/127.0.0.1/$port"
printf '*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$100\r\nabc' >&$stall
expect PONG ping
expect OK set other 1
printf '%097d\r\n' 0 >&$stall
exec {stall}>&-
got=$(cli get slow | wc -c)
[ "$got" = 101 ] || fail "the slow client's value: $got bytes"
# A client that never reads its replies cannot hold up the others.
exec {deaf}<>"/dev/tcp/127.0.0.1/$port"
cli set big "$(head -c 100000 /dev/zero | tr '\0' x)" >/dev/null
for i in $(seq 300); do printf 'GET big\r\n'; done >&$deaf
expect PONG ping
exec {deaf}>&-

# ---------------------------------------------------------------- shutdown
# A pipeline sent just before SIGTERM is answered in full.
exec {late}<>"/dev/tcp/127.0.0.1/$port"
for i in $(seq 100); do printf 'INCR late\r\n'; done >&$late
sleep 0.2
stop_server
got=$(timeout 5 cat <&$late | crlf | tail -1)
exec {late}>&-
[ "$got" = ":100" ] || fail "pending replies at shutdown: last '$got'"
echo "example_redis: ok"
