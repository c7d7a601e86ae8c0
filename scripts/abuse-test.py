#!/usr/bin/env python3
"""Abuses a real `idem serve` and checks it shrugs: thousands of connections,
oversized bulk lengths, unterminated lines, binary garbage, slow-loris
partial commands, and a client pipelining a million commands without reading
a reply — all at once, while a well-behaved client keeps working.

Passes when the well-behaved client got every reply right, the server's RSS
stayed under --max-rss-mb, and the server exits 0 on SIGTERM afterwards.

    scripts/abuse-test.py [--connections 2000] [--pipelined 1000000] [--max-rss-mb 1024]
"""
import argparse
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def connect(port):
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def command(*arguments):
    out = b"*%d\r\n" % len(arguments)
    for argument in arguments:
        argument = argument if isinstance(argument, bytes) else str(argument).encode()
        out += b"$%d\r\n%s\r\n" % (len(argument), argument)
    return out


class ReplyReader:
    def __init__(self, connection):
        self.connection, self.buffer = connection, b""

    def line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.connection.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        if line[:1] == b"$":
            length = int(line[1:])
            if length < 0:
                return None
            while len(self.buffer) < length + 2:
                self.buffer += self.connection.recv(65536)
            value, self.buffer = self.buffer[:length], self.buffer[length + 2:]
            return value
        return line


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--pipelined", type=int, default=1_000_000)
    parser.add_argument("--max-rss-mb", type=float, default=1024)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "idem"))
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.connections * 2 + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    connections = min(args.connections, wanted // 2 - 128)

    workdir = tempfile.mkdtemp(prefix="idem-abuse-")
    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "wb")
    server = subprocess.Popen([args.binary, "serve", "--dir", os.path.join(workdir, "data"), "--port", str(port),
                               "--fsync", "everysec", "--maxclients", str(connections + 100)],
                              stdout=log, stderr=subprocess.STDOUT)
    problems, peak_rss = [], 0.0
    try:
        deadline = time.time() + 30
        while True:
            try:
                connect(port).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start")
                time.sleep(0.05)

        stop = threading.Event()
        rnd = random.Random(7)

        # 1. Thousands of idle connections.
        idle = [connect(port) for _ in range(connections)]

        # 2. Malformed input, each on its own connection: Redis closes these.
        def malformed():
            payloads = [b"*1\r\n$999999999999\r\n", b"*99999999999\r\n", b"*1\r\n$-7\r\n",
                        b"GET " + b"a" * 200_000, b"*2\r\n$3\r\nGET\r\n" + b"x" * 100_000,
                        bytes(rnd.randrange(256) for _ in range(100_000)), b"\"unbalanced\r\n"]
            while not stop.is_set():
                for payload in payloads:
                    try:
                        with connect(port) as connection:
                            connection.sendall(payload)
                            connection.settimeout(5)
                            while connection.recv(65536):
                                pass
                    except OSError:
                        pass

        # 3. Slow loris: commands trickled a byte at a time, never finished.
        def slow_loris():
            lorises = [connect(port) for _ in range(50)]
            request = command("SET", "slow", "x" * 1000)
            position = 0
            while not stop.is_set() and position < len(request) - 1:
                for connection in lorises:
                    try:
                        connection.send(request[position:position + 1])
                    except OSError:
                        pass
                position += 1
                time.sleep(0.01)
            for connection in lorises:
                connection.close()

        # 4. A million pipelined commands, replies never read.
        def flooder():
            try:
                with connect(port) as connection:
                    batch = command("SET", "flood", "v") + command("GET", "flood") * 999
                    sent = 0
                    while sent < args.pipelined and not stop.is_set():
                        connection.sendall(batch)
                        sent += 1000
            except OSError:
                pass  # the server may cut a client that never reads

        threads = [threading.Thread(target=target, daemon=True) for target in (malformed, slow_loris, flooder)]
        for thread in threads:
            thread.start()

        # The well-behaved client, all along.
        good = connect(port)
        reader = ReplyReader(good)
        started, rounds = time.time(), 0
        while time.time() - started < args.seconds:
            key, value = f"good:{rounds % 100}", f"value-{rounds}"
            good.sendall(command("SET", key, value) + command("GET", key))
            if reader.reply() != b"+OK" or reader.reply() != value.encode():
                problems.append(f"well-behaved client got a wrong reply at round {rounds}")
                break
            rounds += 1
            peak_rss = max(peak_rss, rss_mb(server.pid))
            if server.poll() is not None:
                problems.append("the server died")
                break
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for connection in idle:
            connection.close()
        if peak_rss > args.max_rss_mb:
            problems.append(f"server RSS peaked at {peak_rss:.0f} MB > {args.max_rss_mb:.0f} MB")
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=60)
            if code != 0:
                problems.append(f"server exited {code} on SIGTERM")
        else:
            problems.append(f"server died with {server.returncode}")
        print(f"abuse-test: connections={connections} good_rounds={rounds} peak_rss_mb={peak_rss:.0f} "
              f"problems={len(problems)}")
        for problem in problems:
            print("PROBLEM", problem)
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
        if problems:
            print("server log kept in", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
