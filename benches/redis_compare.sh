#!/usr/bin/env bash
# weft-redis beside a real redis-server (Debian's), both on 127.0.0.1,
# driven by redis-benchmark in turn:
#
#   redis-benchmark -c 50 -n N -t set,get,incr -q          (no pipelining)
#   redis-benchmark -c 50 -n N -t set,get,incr -P 16 -q    (pipelines of 16)
#
# RUNS alternating rounds (weft-redis, then redis-server, then again); for
# each test: requests per second and the server's CPU time per request
# (user + system, from /proc/PID/stat around the run). One JSON line per
# measurement into results/redis-compare-STAMP.jsonl, then a table of the
# medians. redis-server is installed through scripts/deps.sh if missing.
#
#   RUNS      alternating rounds (default 3)
#   REQUESTS  requests per test (default 200000)
#   WORKERS   weft-redis workers (default: one per CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-200000}
[ -x build/examples/weft-redis ] || { echo "redis_compare.sh: build weft first (make build)" >&2; exit 1; }
./scripts/deps.sh redis-server

WEFT_PORT=16380
REDIS_PORT=16381
mkdir -p results
out="results/redis-compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: >"$out"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis_compare.sh: nothing answers on port $1" >&2
  exit 1
}

build/examples/weft-redis --port "$WEFT_PORT" ${WORKERS:+--workers "$WORKERS"} 2>/dev/null &
weft_pid=$!
pids+=("$weft_pid")
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile /dev/null --daemonize no &
redis_pid=$!
pids+=("$redis_pid")
wait_port "$WEFT_PORT"
wait_port "$REDIS_PORT"

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run_one() { # server port pid pipeline test
  local before after
  before=$(cpu_ticks "$3")
  local rps
  rps=$(redis-benchmark -h 127.0.0.1 -p "$2" -c 50 -n "$REQUESTS" -P "$4" -t "$5" --csv 2>/dev/null |
    awk -F'"' 'NR == 2 {print $4}')
  after=$(cpu_ticks "$3")
  python3 - "$1" "$4" "$5" "$rps" "$before" "$after" "$hz" "$REQUESTS" >>"$out" <<'EOF'
import json, sys
server, pipeline, test, rps, before, after, hz, n = sys.argv[1:]
cpu_s = (int(after) - int(before)) / int(hz)
print(json.dumps({"server": server, "pipeline": int(pipeline), "test": test,
                  "rps": float(rps), "cpu_us_per_req": 1e6 * cpu_s / int(n)}))
EOF
}

for _ in $(seq "$RUNS"); do
  for pipeline in 1 16; do
    for test in set get incr; do
      run_one weft-redis "$WEFT_PORT" "$weft_pid" "$pipeline" "$test"
      run_one redis-server "$REDIS_PORT" "$redis_pid" "$pipeline" "$test"
    done
  done
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'test':<6} {'pipeline':>8} {'weft-redis k/s':>15} {'redis k/s':>10} {'ratio':>6} "
      f"{'weft us/req':>12} {'redis us/req':>13}")
for pipeline in (1, 16):
    for test in ("set", "get", "incr"):
        def med(server, key):
            v = [r[key] for r in rows if r["server"] == server and r["pipeline"] == pipeline
                 and r["test"] == test]
            return statistics.median(v) if v else float("nan")
        w, r = med("weft-redis", "rps"), med("redis-server", "rps")
        print(f"{test:<6} {pipeline:>8} {w / 1000:>15.1f} {r / 1000:>10.1f} {w / r:>6.2f} "
              f"{med('weft-redis', 'cpu_us_per_req'):>12.2f} "
              f"{med('redis-server', 'cpu_us_per_req'):>13.2f}")
print(f"(medians of {len(rows) // 12} rounds; {sys.argv[1]})")
EOF
