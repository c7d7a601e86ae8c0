#!/usr/bin/env bash
# Server CPU per request of two idem builds, alternated — how every change
# to the hot path in BENCHMARKS.md was judged. On a shared, noisy machine
# throughput drifts by ±20 % between back-to-back runs; the CPU time the
# server process spends per request (user + system, from /proc/PID/stat)
# drifts much less, and alternating the builds spreads what drift remains.
#
#   Benchmarks/compare/ab_cpu.sh OLD_BINARY NEW_BINARY [FSYNC] [REQUESTS] [ROUNDS] [PREFILL]
#
# Each round starts each build on a fresh temporary directory and runs
# redis-benchmark (-c 50 -r 1000000, 64-byte values): SET NX EX at -P 1 and
# -P 16, then GET at -P 1 and -P 16; one line per build and round.
# PREFILL (default 0) first sends that many SET NX EX requests at -P 16
# (2000000 sets about 86 % of the million keys, more than a 64 MiB memtable
# holds) and waits for the flushes to settle, so the measured requests find
# many keys in tables, as on a long-running server.
set -euo pipefail
old=$1 new=$2 fsync=${3:-everysec} requests=${4:-300000} rounds=${5:-3} prefill=${6:-0}
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
tick=$(getconf CLK_TCK)
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
value=$(printf 'x%.0s' $(seq 64))
for round in $(seq "$rounds"); do
    for label in old new; do
        binary=$old; [ "$label" = new ] && binary=$new
        port=$((20000 + RANDOM % 20000))
        "$binary" serve --port "$port" --dir "$work/$label-$round" --fsync "$fsync" > /dev/null 2>&1 &
        pid=$!
        for _ in $(seq 100); do redis-cli -p "$port" PING > /dev/null 2>&1 && break; sleep 0.1; done
        if [ "$prefill" -gt 0 ]; then
            redis-benchmark -p "$port" -c 50 -r 1000000 -n "$prefill" -P 16 -q \
                SET 'key:__rand_int__' "$value" NX EX 86400 > /dev/null
            sleep 8
        fi
        line="$label round $round:"
        for spec in "1 SET" "16 SET" "1 GET" "16 GET"; do
            set -- $spec
            before=$(cpu_ticks "$pid")
            if [ "$2" = SET ]; then
                redis-benchmark -p "$port" -c 50 -r 1000000 -n "$requests" -P "$1" -q \
                    SET 'key:__rand_int__' "$value" NX EX 86400 > /dev/null
            else
                redis-benchmark -p "$port" -c 50 -r 1000000 -n "$requests" -P "$1" -q GET 'key:__rand_int__' > /dev/null
            fi
            after=$(cpu_ticks "$pid")
            line="$line $2 -P$1 $(awk -v a="$before" -v b="$after" -v t="$tick" -v n="$requests" \
                'BEGIN { printf "%.2f us", (b - a) * 1e6 / t / n }')"
        done
        echo "$line"
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    done
done
