#!/usr/bin/env bash
# RSS of `idem serve` after a 5M-key load, every 5 s while it settles —
# how BENCHMARKS.md's "Session 16" table was measured.
#
#   Benchmarks/compare/memory_settle.sh BINARY [VAR=VALUE ...]   (e.g. MALLOC_CONF=background_thread:true)
#
# Starts BINARY on a temporary directory (everysec), loads 5M `SET EX` of
# 64-byte values (-P 64, a 500M-key space), then prints RssAnon, the
# memtable's bytes and the sealed memtables at 5, 10, 15 and 20 s.
set -euo pipefail
binary=$1; shift
. "$(dirname "$0")/server_lib.sh"
start_idem "$binary" "$work/data" everysec "$@"
redis-benchmark -p "$port" -c 50 -r 500000000 -n 5000000 -P 64 -q SET 'key:__rand_int__' "$value" EX 86400 > /dev/null 2>&1
field() { redis-cli -p "$port" INFO "$1" | tr -d '\r' | grep "^$2:" | cut -d: -f2; }
for seconds in 5 10 15 20; do
    sleep 5
    echo "t+${seconds}s $(grep RssAnon "/proc/$pid/status" | tr -s ' \t' ' ')" \
         "memtable_bytes=$(field memory idem_memtable_bytes) sealed=$(field idem sealed_memtables)"
done
