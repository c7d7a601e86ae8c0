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
# -P 16, then GET at -P 1 and -P 16, then IDEM.BEGIN at -P 16 (mostly new
# keys); one line per build and round.
# PREFILL (default 0) first sends that many SET NX EX requests at -P 16
# (2000000 sets about 86 % of the million keys, more than a 64 MiB memtable
# holds) and waits for the flushes to settle, so the measured requests find
# many keys in tables, as on a long-running server.
set -euo pipefail
old=$1 new=$2 fsync=${3:-everysec} requests=${4:-300000} rounds=${5:-3} prefill=${6:-0}
. "$(dirname "$0")/server_lib.sh"
for round in $(seq "$rounds"); do
    for label in old new; do
        binary=$old; [ "$label" = new ] && binary=$new
        start_idem "$binary" "$work/$label-$round" "$fsync"
        if [ "$prefill" -gt 0 ]; then
            redis-benchmark -p "$port" -c 50 -r 1000000 -n "$prefill" -P 16 -q \
                SET 'key:__rand_int__' "$value" NX EX 86400 > /dev/null
            sleep 8
        fi
        line="$label round $round:"
        for spec in "1 SET" "16 SET" "1 GET" "16 GET" "16 BEGIN"; do
            set -- $spec
            line="$line $2 -P$1 $(cpu_per_request "$1" "$2" "$requests")"
        done
        echo "$line"
        stop_idem
    done
done
