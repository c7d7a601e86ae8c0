#!/usr/bin/env bash
# Server CPU per request of two idem builds on the same prefilled data:
# the -P 16 rows on a filled key space, with less spread than ab_cpu.sh.
#
#   Benchmarks/compare/ab_prefilled.sh OLD_BINARY NEW_BINARY [ROUNDS] [REQUESTS] [PREFILL]
#
# Builds one data directory with OLD (PREFILL, default 2000000, SET NX EX
# at -P 16 over a million keys: about 86 % of them set, a table plus a
# full memtable in the WAL), then each round starts each build on a fresh
# copy of it, warms the block cache with 500k GETs, and measures user +
# system CPU (/proc/PID/stat) per request over REQUESTS (default 1500000)
# SET NX EX and then GET, both -P 16, -c 50. Why copies: an identical
# starting state (the same tables, the same memtable after replay) takes
# the prefill's flush timing out of the comparison; the alternation
# spreads the machine's drift over both builds.
set -euo pipefail
old=$1 new=$2 rounds=${3:-5} requests=${4:-1500000} prefill=${5:-2000000}
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
tick=$(getconf CLK_TCK)
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
value=$(printf 'x%.0s' $(seq 64))
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Starts BINARY on DIR; sets pid and port.
start() {
    port=$((20000 + RANDOM % 20000))
    "$1" serve --port "$port" --dir "$2" --fsync everysec > "$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
        redis-cli -p "$port" PING > /dev/null 2>&1 && return
        sleep 0.1
    done
    echo "server did not answer" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

start "$old" "$work/base"
redis-benchmark -p "$port" -c 50 -r 1000000 -n "$prefill" -P 16 -q SET 'key:__rand_int__' "$value" NX EX 86400 > /dev/null
sleep 15  # let the flushes finish
stop

for round in $(seq "$rounds"); do
    for label in old new; do
        binary=$old; [ "$label" = new ] && binary=$new
        rm -rf "$work/run"; cp -r "$work/base" "$work/run"
        start "$binary" "$work/run"
        timeout 120 redis-benchmark -p "$port" -c 50 -r 1000000 -n 500000 -P 16 -q GET 'key:__rand_int__' > /dev/null
        line="$label round $round:"
        for command in SET GET; do
            before=$(cpu_ticks "$pid")
            if [ "$command" = SET ]; then
                timeout 300 redis-benchmark -p "$port" -c 50 -r 1000000 -n "$requests" -P 16 -q \
                    SET 'key:__rand_int__' "$value" NX EX 86400 > /dev/null
            else
                timeout 300 redis-benchmark -p "$port" -c 50 -r 1000000 -n "$requests" -P 16 -q GET 'key:__rand_int__' > /dev/null
            fi
            after=$(cpu_ticks "$pid")
            line="$line $command -P16 $(awk -v a="$before" -v b="$after" -v t="$tick" -v n="$requests" \
                'BEGIN { printf "%.2f us", (b - a) * 1e6 / t / n }')"
        done
        echo "$line"
        stop
    done
done
