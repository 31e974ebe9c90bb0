#!/usr/bin/env bash
# weft-fetch (libcurl's multi interface on weft_wait_fd and weft deadlines)
# against weft-http over 127.0.0.1: 50 URLs fetched concurrently, each
# answered with 200 and its 13 bytes; a refused connection is reported and
# fails the run; then weft-http shuts down cleanly.
set -euo pipefail
. "$(dirname "$0")/example_lib.sh"
fetch=$1
start_server "$2"
fail() { echo "example_fetch: $*" >&2; exit 1; }
urls=()
for i in $(seq 50); do urls+=("http://127.0.0.1:$port/$i"); done
out=$(timeout 60 "$fetch" --workers 2 "${urls[@]}") || fail "exit status $?: $out"
n=$(grep -c ': HTTP 200, 13 bytes' <<<"$out" || true)
[ "$n" = 50 ] || fail "$n of 50 transfers answered: $out"
if out=$(timeout 60 "$fetch" "http://127.0.0.1:$port/ok" "http://127.0.0.1:1/refused"); then
	fail "a refused connection did not fail the run: $out"
fi
grep -q '/ok: HTTP 200' <<<"$out" || fail "the good URL beside the refused one: $out"
grep -q '/refused: ' <<<"$out" || fail "the refused URL was not reported: $out"
stop_server
echo "example_fetch: ok"
