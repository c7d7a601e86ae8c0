#!/usr/bin/env bash
# Server CPU per request of two idem builds on the same prefilled data:
# the -P 16 rows on a filled key space, with less spread than ab_cpu.sh.
#
#   Benchmarks/compare/ab_prefilled.sh OLD_BINARY NEW_BINARY [ROUNDS] [REQUESTS] [PREFILL]
#
# OLD_ENV / NEW_ENV (space-separated VAR=VALUE) set a side's environment,
# so one binary can be compared with itself under two settings, e.g.
#   OLD_ENV=IDEM_BLOCK_CACHE_SIZE=64m NEW_ENV=IDEM_BLOCK_CACHE_SIZE=128m \
#   Benchmarks/compare/ab_prefilled.sh .build/release/idem .build/release/idem 6
#
# Builds one data directory per build (PREFILL, default 2000000, SET NX
# EX at -P 16 over a million keys: about 86 % of them set, tables plus a
# full memtable in the WAL; per build, since a build may not read another's
# table format), then each round starts each build on a fresh copy of its
# own directory, warms the block cache with 500k GETs, and measures user +
# system CPU (/proc/PID/stat) per request over REQUESTS (default 1500000)
# SET NX EX and then GET, both -P 16, -c 50. Why copies: an identical
# starting state (the same tables, the same memtable after replay) in
# every round takes the prefill's flush timing out of the rounds; the
# alternation spreads the machine's drift over both builds.
set -euo pipefail
old=$1 new=$2 rounds=${3:-5} requests=${4:-1500000} prefill=${5:-2000000}
. "$(dirname "$0")/server_lib.sh"

# side LABEL: the binary and environment of that side.
side() {
    if [ "$1" = old ]; then binary=$old; read -r -a environment <<< "${OLD_ENV:-}"
    else binary=$new; read -r -a environment <<< "${NEW_ENV:-}"; fi
}

for label in old new; do
    side "$label"
    start_idem "$binary" "$work/base-$label" everysec "${environment[@]}"
    redis-benchmark -p "$port" -c 50 -r 1000000 -n "$prefill" -P 16 -q SET 'key:__rand_int__' "$value" NX EX 86400 > /dev/null
    sleep 15  # let the flushes finish
    stop_idem
done

for round in $(seq "$rounds"); do
    for label in old new; do
        side "$label"
        rm -rf "$work/run"; cp -r "$work/base-$label" "$work/run"
        start_idem "$binary" "$work/run" everysec "${environment[@]}"
        timeout 120 redis-benchmark -p "$port" -c 50 -r 1000000 -n 500000 -P 16 -q GET 'key:__rand_int__' > /dev/null
        line="$label round $round:"
        for command in SET GET; do
            line="$line $command -P16 $(cpu_per_request 16 "$command" "$requests")"
        done
        echo "$line"
        stop_idem
    done
done
