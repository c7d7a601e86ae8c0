#!/usr/bin/env python3
"""Idem vs Redis, side by side in one run, on Redis's own benchmark.

Starts Debian's redis-server and `idem serve` (release build) on loopback,
each with its own temporary directory, runs redis-benchmark against both
with the same workload, and prints a table with the ratio Idem/Redis
(medians of --runs, taken in back-to-back pairs that alternate which server
goes first; the ratio is the median of the pairs' ratios). Installs
redis-server/redis-tools with apt-get when missing, bounds every step's
time, and stops only the processes it started.

Also, through pair_driver.c (compiled here): the idempotency round trip
IDEM.BEGIN + IDEM.COMPLETE next to Redis's SET NX + SET XX pair (the second
command needs the first one's reply, which redis-benchmark cannot do), and
the p99 of IDEM.BEGIN (vs SET NX PX) on an open-loop schedule at half of
each server's own maximum, once both servers have finished the background
work the earlier rows left (Idem's flushes and merges, Redis's AOF
rewrite) — and that open loop's floor on this machine: the same rate
against a Redis that persists nothing. --json writes every figure for
chart.py.

    Benchmarks/compare/vs_redis.py [--requests 1000000] [--runs 3] [--keys 5000000] [--json FILE]
                                   [--only throughput pairs open-loop memory]
"""
import json
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VALUE = "x" * 64


def ensure_tools():
    missing = [tool for tool in ("redis-server", "redis-benchmark", "redis-cli") if not shutil.which(tool)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "redis-server", "redis-tools"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    subprocess.run(["make", "-C", ROOT, "release"], check=True, stdout=subprocess.DEVNULL)


def build_pair_driver(workdir):
    driver = os.path.join(workdir, "pair_driver")
    subprocess.run(["cc", "-O2", "-o", driver, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pair_driver.c"),
                    "-lpthread"], check=True)
    return driver


def pairs(driver, kind, port, seconds, rate=None):
    """pair_driver's report: (ops/s, p50 ms, p99 ms)."""
    # 50 connections, as redis-benchmark, whose -P 1 maximum the open-loop
    # rate is half of. (The open loop runs in one client thread.)
    command = [driver, kind, str(port), "50", str(seconds)] + ([str(int(rate))] if rate else [])
    fields = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout.split()
    if int(fields[4]) != 0:
        raise RuntimeError(f"{kind}: {fields[4]} error replies in the pair workload")
    return float(fields[0]), float(fields[1]), float(fields[2])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_ping(port, timeout=600):
    start = time.time()
    while time.time() - start < timeout:
        result = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True)
        if result.stdout.strip() == "PONG":
            return time.time() - start
        time.sleep(0.02)
    raise RuntimeError(f"server on port {port} did not answer PING")


class Server:
    """One server process this script started (and only it stops)."""

    def __init__(self, kind, fsync, workdir):
        self.kind, self.fsync, self.port = kind, fsync, free_port()
        self.dir = os.path.join(workdir, f"{kind}-{fsync}")
        os.makedirs(self.dir, exist_ok=True)
        self.process = None

    def command(self):
        if self.kind == "redis":
            # fsync "off": no AOF at all (the open loop's floor below).
            persistence = ["--appendonly", "no"] if self.fsync == "off" else ["--appendonly", "yes", "--appendfsync", self.fsync]
            return ["redis-server", "--port", str(self.port), "--dir", self.dir, *persistence,
                    "--save", "", "--protected-mode", "no", "--io-threads", "1"]
        return [os.path.join(ROOT, ".build", "release", "idem"), "serve", "--dir", os.path.join(self.dir, "data"),
                "--port", str(self.port), "--fsync", self.fsync]

    def start(self):
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.process = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT)
        return wait_for_ping(self.port)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def info(self, section=""):
        return subprocess.run(["redis-cli", "-p", str(self.port), "INFO"] + ([section] if section else []),
                              capture_output=True, text=True).stdout

    def settle(self, quiet_seconds=2.0, timeout=60):
        """Waits until the server's background work from earlier rows is
        done, so a latency row measures its own requests: Redis with no AOF
        rewrite running; Idem with no memtable awaiting its flush and its
        flush and compaction counts unchanged for quiet_seconds. Returns the
        seconds waited."""
        start = time.time()
        last, quiet_since = None, time.time()
        while time.time() - start < timeout:
            # Sections by name: a plain INFO on Idem would not count keys,
            # but Redis's default includes more than needed here.
            info = self.info("persistence" if self.kind == "redis" else "idem")
            if self.kind == "redis":
                busy = "aof_rewrite_in_progress:1" in info or "rdb_bgsave_in_progress:1" in info
                marker = None
            else:
                fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
                busy = fields.get("sealed_memtables", "0") != "0"
                marker = (fields.get("flushes"), fields.get("compactions"))
            if busy or marker != last:
                last, quiet_since = marker, time.time()
            elif time.time() - quiet_since >= quiet_seconds:
                return time.time() - start
            time.sleep(0.2)
        return time.time() - start

    def memory(self):
        """Redis: used_memory (as the issue compares); Idem: process RSS once
        no sealed memtable awaits its flush and no merge runs (up to 120 s)
        and the RSS has stopped falling: less than 1 % lower than 5 s
        earlier (up to 60 s more). Right after a load, RSS also holds the
        memtable being written out, a merge's buffers, and the pages the
        allocator has not yet handed back (jemalloc's background thread
        returns them as they age, over ~10 s), so a reading taken the moment
        `sealed_memtables` reached 0 caught 216-455 MB where the settled
        server holds 68-122 MB (2026-12-04/05, 5M keys), and one taken during
        the load's last merge 345 MB against 113 MB (2026-12-06)."""
        if self.kind == "redis":
            info = self.info("memory")
            return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("used_memory:")))
        def quiet():
            info = self.info("idem")
            return "sealed_memtables:0" in info and "compaction_running:1" not in info
        deadline = time.time() + 120
        while time.time() < deadline:
            # Twice, a second apart: a flush's end and the merge it triggers
            # leave a moment in which neither shows.
            if quiet():
                time.sleep(1)
                if quiet():
                    break
            time.sleep(0.2)

        def rss():
            with open(f"/proc/{self.process.pid}/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        samples, deadline = [rss()], time.time() + 60
        while time.time() < deadline:
            time.sleep(0.5)
            samples.append(rss())
            if len(samples) > 10 and samples[-1] >= samples[-11] * 0.99:
                break
        return samples[-1]


def benchmark(port, requests, pipeline, *command, clients=50, keyspace=1_000_000):
    """redis-benchmark's own report: (requests/s, p50 ms, p99 ms)."""
    result = subprocess.run(["redis-benchmark", "-p", str(port), "-c", str(clients), "-r", str(keyspace),
                             "-n", str(requests), "-P", str(pipeline), "--csv", *command],
                            capture_output=True, text=True, timeout=900)
    rows = [line for line in result.stdout.splitlines() if line.startswith('"') and not line.startswith('"test"')]
    if not rows:
        raise RuntimeError(f"redis-benchmark gave no result: {result.stderr}")
    fields = [field.strip('"') for field in rows[-1].split('","')]
    return float(fields[1]), float(fields[4]), float(fields[6])


WORKLOADS = [
    ("SET NX EX", ["SET", "key:__rand_int__", VALUE, "NX", "EX", "86400"]),
    ("GET", ["GET", "key:__rand_int__"]),
]


SECTIONS = ["throughput", "pairs", "open-loop", "memory"]


def side_by_side(runs, measure_idem, measure_redis):
    """Both servers' medians of `runs` measurements, taken in pairs that
    alternate which server goes first, and the median of the pairs'
    throughput ratios. Why pairs: this machine's speed drifts by up to 2x
    within minutes (other tenants), so all of one server's runs followed by
    all of the other's would measure the drift as much as the servers; two
    runs back to back see nearly the same machine. (Both servers see the
    same sequence of workloads, so the state each run leaves — keys set,
    tables flushed — is alike too.)"""
    idem, redis, ratios = [], [], []
    for run in range(runs):
        if run % 2 == 0:
            redis.append(measure_redis())
            idem.append(measure_idem())
        else:
            idem.append(measure_idem())
            redis.append(measure_redis())
        ratios.append(idem[-1][0] / redis[-1][0])
    def median(samples):
        return tuple(statistics.median(values) for values in zip(*samples))
    return median(idem), median(redis), statistics.median(ratios)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keys", type=int, default=5_000_000, help="keys loaded for the memory and restart rows")
    parser.add_argument("--fsync", nargs="+", default=["everysec", "always"])
    parser.add_argument("--pair-seconds", type=float, default=10)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS,
                        help="run only these sections (default: all)")
    parser.add_argument("--json", help="also write the results here (for chart.py)")
    args = parser.parse_args()
    ensure_tools()
    workdir = tempfile.mkdtemp(prefix="idem-vs-redis-")
    rows, floors = [], {}
    try:
        driver = build_pair_driver(workdir)
        for fsync in args.fsync:
            servers = {kind: Server(kind, fsync, workdir) for kind in ("redis", "idem")}
            for server in servers.values():
                server.start()
            try:
                if "throughput" in args.only:
                    for name, command in WORKLOADS:
                        for pipeline in (1, 16):
                            rows.append((f"{name} -P {pipeline} ({fsync})",) + side_by_side(
                                args.runs,
                                lambda: benchmark(servers["idem"].port, args.requests, pipeline, *command),
                                lambda: benchmark(servers["redis"].port, args.requests, pipeline, *command)))
                if "throughput" in args.only or "open-loop" in args.only:
                    idem_begin, redis_lock, ratio = side_by_side(
                        args.runs,
                        lambda: benchmark(servers["idem"].port, args.requests, 1, "IDEM.BEGIN", "op:__rand_int__", "LEASE", "30000"),
                        lambda: benchmark(servers["redis"].port, args.requests, 1, "SET", "op:__rand_int__", "1", "NX", "PX", "30000"))
                    rows.append((f"IDEM.BEGIN vs SET NX PX -P 1 ({fsync})", idem_begin, redis_lock, ratio))
                if "pairs" in args.only:
                    rows.append((f"BEGIN+COMPLETE vs SET NX+SET XX pairs ({fsync})",) + side_by_side(
                        args.runs,
                        lambda: pairs(driver, "idem", servers["idem"].port, args.pair_seconds),
                        lambda: pairs(driver, "redis", servers["redis"].port, args.pair_seconds)))
                if "open-loop" in args.only:
                    # The throughput rows leave a million keys behind, whose
                    # flushes and merges (Redis: AOF rewrite) would share
                    # the two vCPUs with the open loop's requests.
                    for server in servers.values():
                        server.settle()
                    # The floor: what this machine and the one-thread client
                    # give a server with nothing to persist — SET NX PX to a
                    # Redis without AOF at Idem's rate, measured right after
                    # each Idem run (the machine's speed drifts). A p99 above
                    # 1 ms here is the machine's, not the server's.
                    floor_server, floor_runs = Server("redis", "off", workdir), []
                    floor_server.start()
                    def idem_then_floor(rate=idem_begin[0] / 2):
                        result = pairs(driver, "idem", servers["idem"].port, args.pair_seconds, rate=rate)
                        floor_runs.append(pairs(driver, "redis", floor_server.port, args.pair_seconds, rate=rate))
                        return result
                    try:
                        rows.append((f"IDEM.BEGIN vs SET NX PX at half max, open loop ({fsync})",) + side_by_side(
                            args.runs, idem_then_floor,
                            lambda: pairs(driver, "redis", servers["redis"].port, args.pair_seconds, rate=redis_lock[0] / 2)))
                    finally:
                        floor_server.stop()
                    floors[fsync] = tuple(statistics.median(values) for values in zip(*floor_runs))
            finally:
                for server in servers.values():
                    server.stop()
        # Memory and restart with --keys keys of 64 B values (fsync everysec for both).
        memory, restart = {}, {}
        if "memory" in args.only:
            servers = {kind: Server(kind, "everysec", workdir + "/load") for kind in ("redis", "idem")}
            for kind, server in servers.items():
                server.start()
                benchmark(server.port, args.keys, 64, "SET", "load:__rand_int__", VALUE, "EX", "86400", keyspace=args.keys * 100)
                memory[kind] = server.memory()
                server.stop()
                restart[kind] = server.start()
                server.stop()
        print(f"\nIdem vs Redis {subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2].removeprefix('v=')}"
              f" — {args.requests} requests, 50 clients, 1M-key space, 64 B values, medians of {args.runs} runs")
        print(f"{'workload':56} {'Idem ops/s':>11} {'Redis ops/s':>11} {'ratio':>6} {'Idem p50/p99 ms':>16} {'Redis p50/p99 ms':>17}")
        for name, idem, redis, ratio in rows:
            print(f"{name:56} {idem[0]:11.0f} {redis[0]:11.0f} {ratio:6.2f} "
                  f"{idem[1]:7.3f}/{idem[2]:<8.3f} {redis[1]:8.3f}/{redis[2]:<8.3f}")
        for fsync, floor in floors.items():
            print(f"{'open-loop floor: Redis without AOF at Idem rate (' + fsync + ')':56} {floor[0]:11.0f} {'':11} {'':6} "
                  f"{floor[1]:7.3f}/{floor[2]:<8.3f}")
        if memory:
            print(f"{'memory after ' + str(args.keys) + ' SETs (RSS vs used_memory)':56} {memory['idem']:11d} {memory['redis']:11d} "
                  f"{memory['idem'] / memory['redis']:6.2f}")
            print(f"{'restart to first PING (s)':56} {restart['idem']:11.2f} {restart['redis']:11.2f} "
                  f"{restart['idem'] / restart['redis']:6.2f}")
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"requests": args.requests, "runs": args.runs, "keys": args.keys,
                           "rows": [{"workload": name, "idem": list(idem), "redis": list(redis), "ratio": ratio}
                                    for name, idem, redis, ratio in rows],
                           "open_loop_floor": {fsync: list(floor) for fsync, floor in floors.items()},
                           "memory": memory, "restart": restart}, out, indent=1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
