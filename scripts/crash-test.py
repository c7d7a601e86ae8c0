#!/usr/bin/env python3
"""kill -9 crash harness for `idem serve`, with an acknowledged-writes oracle.

Each iteration starts the real server binary on one data directory (kept
across iterations, so recovery of recovered data is exercised too), drives it
with concurrent clients (SET NX EX, SET EX, DEL, GETDEL, IDEM.BEGIN /
COMPLETE / ABORT), records every acknowledged reply, sends SIGKILL at a random
moment, restarts the server and checks every key against the oracle:

- an acknowledged write is present with its exact value / record state;
- an acknowledged delete stays deleted (nothing resurrects);
- a write that was in flight at the kill is either fully there or not at all;
- the server recovers every time.

With --fsync everysec the check is the policy's bound instead: only writes
acknowledged in the last --loss-window seconds before the kill may be lost.

    scripts/crash-test.py [--iterations 30] [--seed 1] [--fsync always|everysec] [--clients 8]

Prints one summary line: iterations, acknowledged operations verified,
violations; exits 1 on any violation or failed recovery.
"""
import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABSENT = ("absent",)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Oracle:
    """What each key must hold: the last acknowledged state, plus the state
    an unacknowledged (in-flight) operation would leave."""

    def __init__(self):
        self.acked = {}        # key -> state
        self.acked_at = {}     # key -> time of the acknowledgement
        self.history = {}      # key -> [(time, state)] acknowledged states, for the everysec bound
        self.inflight = {}     # key -> state the in-flight operation would leave
        self.lock = threading.Lock()
        self.verified = 0

    def begin(self, key, new_state):
        with self.lock:
            self.inflight[key] = new_state

    def ack(self, key, new_state):
        now = time.time()
        with self.lock:
            self.inflight.pop(key, None)
            self.acked[key] = new_state
            self.acked_at[key] = now
            self.history.setdefault(key, []).append((now, new_state))

    def fail(self, key):
        """The operation got an error reply: it did nothing."""
        with self.lock:
            self.inflight.pop(key, None)

    def state(self, key):
        return self.acked.get(key, ABSENT)


class Worker(threading.Thread):
    def __init__(self, index, port, oracle, keys, seed, stop):
        super().__init__(daemon=True)
        self.port, self.oracle, self.keys, self.stop = port, oracle, keys, stop
        self.random = random.Random(seed)
        self.tokens = {}  # idempotency key -> token of an attempt this worker owns
        self.errors = []
        self.current_key = None

    def run(self):
        try:
            client = redis.Redis(port=self.port, protocol=2, socket_timeout=5, decode_responses=True)
            while not self.stop.is_set():
                try:
                    self.step(client)
                except redis.ResponseError as error:
                    # Refused (e.g. LEASELOST after a lapsed lease): the
                    # operation changed nothing.
                    self.errors.append(str(error))
                    self.oracle.fail(self.current_key)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError):
            return  # the kill

    def step(self, client):
        oracle, rnd = self.oracle, self.random
        if rnd.random() < 0.6:
            key = self.current_key = "s:" + rnd.choice(self.keys)
            current = oracle.state(key)
            choice = rnd.random()
            value = f"v{rnd.randrange(1 << 30)}"
            if choice < 0.4:
                oracle.begin(key, ("string", value) if current == ABSENT else current)
                reply = client.set(key, value, nx=True, ex=86400)
                oracle.ack(key, ("string", value) if reply else current)
            elif choice < 0.7:
                oracle.begin(key, ("string", value))
                client.set(key, value, ex=86400)
                oracle.ack(key, ("string", value))
            elif choice < 0.85:
                oracle.begin(key, ABSENT)
                client.delete(key)
                oracle.ack(key, ABSENT)
            else:
                oracle.begin(key, ABSENT)
                client.getdel(key)
                oracle.ack(key, ABSENT)
        else:
            key = self.current_key = "i:" + rnd.choice(self.keys)
            current = oracle.state(key)
            if key in self.tokens and current[0] == "in_progress":
                token = self.tokens.pop(key)
                if rnd.random() < 0.75:
                    response = f"r{rnd.randrange(1 << 30)}"
                    oracle.begin(key, ("completed", response))
                    client.execute_command("IDEM.COMPLETE", key, token, response)
                    oracle.ack(key, ("completed", response))
                else:
                    oracle.begin(key, ABSENT)
                    client.execute_command("IDEM.ABORT", key, token)
                    oracle.ack(key, ABSENT)
            elif current[0] == "completed" and rnd.random() < 0.3:
                oracle.begin(key, ABSENT)
                client.execute_command("IDEM.FORGET", key)
                oracle.ack(key, ABSENT)
            elif current[0] != "completed":
                # Absent, or in progress under an earlier iteration's (killed)
                # worker: once its lease lapses, BEGIN takes over.
                oracle.begin(key, ("in_progress",))
                reply = client.execute_command("IDEM.BEGIN", key, "LEASE", "1000")
                if reply[0] == "acquired":
                    self.tokens[key] = reply[1]
                    oracle.ack(key, ("in_progress",))
                else:
                    oracle.fail(key)


def observed(client, key):
    if key.startswith("s:"):
        value = client.get(key)
        return ABSENT if value is None else ("string", value)
    record = client.execute_command("IDEM.GET", key)
    if record is None:
        return ABSENT
    fields = dict(zip(record[0::2], record[1::2]))
    return ("completed", fields["response"]) if fields["state"] == "completed" else ("in_progress",)


def verify(port, oracle, keys, fsync, killed_at, window, violations):
    client = redis.Redis(port=port, protocol=2, decode_responses=True)
    for prefix in ("s:", "i:"):
        for suffix in keys:
            key = prefix + suffix
            actual = observed(client, key)
            expected = oracle.state(key)
            allowed = {expected}
            if key in oracle.inflight:
                allowed.add(oracle.inflight[key])
            if fsync == "everysec":
                # Anything acknowledged within the window before the kill may be lost:
                # the key may show any state it had since then.
                for at, state in oracle.history.get(key, []):
                    if at >= killed_at - window:
                        allowed.add(state)
                earlier = [state for at, state in oracle.history.get(key, []) if at < killed_at - window]
                allowed.add(earlier[-1] if earlier else ABSENT)
            if expected != ABSENT or key in oracle.history:
                oracle.verified += 1
            if actual not in allowed:
                violations.append(f"{key}: found {actual}, expected one of {sorted(allowed)}")
            # Re-base the oracle on what survived (everysec may have lost a tail).
            oracle.acked[key] = actual
            oracle.history[key] = [(time.time(), actual)]
            oracle.inflight.pop(key, None)


def start(binary, directory, port, fsync, log):
    process = subprocess.Popen([binary, "serve", "--dir", directory, "--port", str(port), "--fsync", fsync,
                                "--memtable-size", "1m"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            return None
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return process
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            time.sleep(0.02)
    process.kill()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fsync", choices=["always", "everysec"], default="always")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--keys", type=int, default=400, help="keys per type")
    parser.add_argument("--loss-window", type=float, default=1.5, help="seconds (everysec)")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "idem"))
    args = parser.parse_args()

    rnd = random.Random(args.seed)
    workdir = tempfile.mkdtemp(prefix="idem-crash-")
    directory = os.path.join(workdir, "data")
    log = open(os.path.join(workdir, "server.log"), "ab")
    oracle, keys, violations, acknowledged = Oracle(), [f"{n:04d}" for n in range(args.keys)], [], 0
    failed_recoveries = 0
    try:
        for iteration in range(args.iterations):
            port = free_port()
            process = start(args.binary, directory, port, args.fsync, log)
            if process is None:
                failed_recoveries += 1
                violations.append(f"iteration {iteration}: the server did not recover")
                break
            if iteration > 0:
                verify(port, oracle, keys, args.fsync, killed_at, args.loss_window, violations)
            before = sum(len(history) for history in oracle.history.values())
            stop = threading.Event()
            # Each worker owns its own keys, so the oracle knows the one
            # operation that can be in flight on a key.
            workers = [Worker(index, port, oracle, keys[index::args.clients], rnd.randrange(1 << 62), stop)
                       for index in range(args.clients)]
            for worker in workers:
                worker.start()
            time.sleep(rnd.uniform(0.05, 0.8))
            killed_at = time.time()
            process.send_signal(signal.SIGKILL)
            process.wait()
            stop.set()
            for worker in workers:
                worker.join(timeout=10)
            acknowledged += sum(len(history) for history in oracle.history.values()) - before
        else:
            port = free_port()
            process = start(args.binary, directory, port, args.fsync, log)
            if process is None:
                failed_recoveries += 1
                violations.append("final restart: the server did not recover")
            else:
                verify(port, oracle, keys, args.fsync, killed_at, args.loss_window, violations)
                process.terminate()
                process.wait(timeout=60)
    finally:
        log.close()
        if not violations:
            shutil.rmtree(workdir, ignore_errors=True)
    for violation in violations[:20]:
        print("VIOLATION", violation)
    print(f"crash-test: fsync={args.fsync} seed={args.seed} iterations={args.iterations} "
          f"acknowledged={acknowledged} verified={oracle.verified} failed_recoveries={failed_recoveries} "
          f"violations={len(violations)}" + (f" (kept {workdir})" if violations else ""))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
