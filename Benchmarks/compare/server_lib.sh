# Sourced by the shell benchmarks here: one way to start and stop the
# `idem serve` under test and to read its CPU time.
#
# After sourcing: `work` is a temporary directory removed on exit, together
# with the server if one is running; `value` is the 64-byte value every
# workload writes; `tick` is the kernel's clock ticks per second.
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
tick=$(getconf CLK_TCK)
work=$(mktemp -d)
pid=""
port=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
value=$(printf 'x%.0s' $(seq 64))

# start_idem BINARY DIR FSYNC [VAR=VALUE ...]: starts the server on a
# random loopback port and waits until it answers PING; sets `pid` and
# `port`. Exits, showing the server's log, if it dies or never answers —
# a redis-benchmark against no server would spin until killed.
start_idem() {
    local binary=$1 dir=$2 fsync=$3
    shift 3
    # Below the kernel's ephemeral range (32768 on), where redis-benchmark's
    # own connections can hold the port picked.
    port=$((20000 + RANDOM % 12000))
    env "$@" "$binary" serve --port "$port" --dir "$dir" --fsync "$fsync" > "$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
        redis-cli -p "$port" PING > /dev/null 2>&1 && return
        sleep 0.1
    done
    echo "the server did not answer PING in 20 s" >&2
    exit 1
}

stop_idem() {
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
}

# User + system CPU ticks of process PID so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# cpu_per_request PIPELINE SET|GET|BEGIN REQUESTS: runs redis-benchmark
# (-c 50 over a million keys; SET is `SET key <value> NX EX 86400`, BEGIN
# is `IDEM.BEGIN op:key LEASE 30000`) against the server and prints the
# server's CPU per request, e.g. "2.61 us".
cpu_per_request() {
    local pipeline=$1 command=$2 requests=$3 before after
    before=$(cpu_ticks "$pid")
    if [ "$command" = SET ]; then
        timeout 600 redis-benchmark -p "$port" -c 50 -r 1000000 -n "$requests" -P "$pipeline" -q \
            SET 'key:__rand_int__' "$value" NX EX 86400 > /dev/null
    elif [ "$command" = BEGIN ]; then
        timeout 600 redis-benchmark -p "$port" -c 50 -r 1000000 -n "$requests" -P "$pipeline" -q \
            IDEM.BEGIN 'op:__rand_int__' LEASE 30000 > /dev/null
    else
        timeout 600 redis-benchmark -p "$port" -c 50 -r 1000000 -n "$requests" -P "$pipeline" -q GET 'key:__rand_int__' > /dev/null
    fi
    after=$(cpu_ticks "$pid")
    awk -v a="$before" -v b="$after" -v t="$tick" -v n="$requests" 'BEGIN { printf "%.2f us", (b - a) * 1e6 / t / n }'
}
