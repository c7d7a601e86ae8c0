#!/usr/bin/env bash
# Builds every libFuzzer target in Fuzz/ and runs each for a bounded time
# (default 30 s) on its committed seed corpus. Fails on any crash, hang or
# sanitizer report. Usage: scripts/fuzz.sh [seconds-per-target]
#                          scripts/fuzz.sh --build-only
set -euo pipefail
seconds=${1:-30}
cd "$(dirname "$0")/../Fuzz"
swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 \
    | grep -v -E "Cannot export local symbol|^warning: ld.gold" || true
[ "$seconds" = "--build-only" ] && exit 0
for target in FuzzWALReplay FuzzTableReader FuzzManifest FuzzRESPParser FuzzIdempotencyRecord FuzzCommands; do test -x ".build/release/$target"; done
status=0
# target:corpus-folder
for entry in FuzzWALReplay:wal-replay FuzzTableReader:table-reader FuzzManifest:manifest FuzzRESPParser:resp-parser FuzzIdempotencyRecord:idempotency-record FuzzCommands:commands; do
    target=${entry%%:*}
    corpus="corpus/${entry#*:}"
    work=$(mktemp -d)
    cp -r "$corpus/." "$work/"
    echo "== $target for ${seconds}s (corpus $corpus)"
    # FuzzCommands keeps one server (event loop and thread pool threads) for
    # the whole run; LeakSanitizer reports those threads' state and lazily
    # built statics at exit, so leak checking is off for that target only.
    leaks=1
    [ "$target" = FuzzCommands ] && leaks=0
    if ! ASAN_OPTIONS="detect_leaks=$leaks" SWIFT_BACKTRACE=enable=no ".build/release/$target" "$work" -max_total_time="$seconds" \
            -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 15; then
        status=1
    fi
    # libFuzzer exits non-zero on a finding; pipefail carries it here.
    rm -rf "$work"
done
exit $status
