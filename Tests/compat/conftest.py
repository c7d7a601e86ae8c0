"""Starts a real `idem serve` for the compatibility suite.

The binary is $IDEM_BIN (default .build/debug/idem); each test module gets a
server on a free port over a fresh temporary directory.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IDEM_BIN = os.environ.get("IDEM_BIN", os.path.join(ROOT, ".build", "debug", "idem"))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class IdemProcess:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="idem-compat-")
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.process = subprocess.Popen(
            [IDEM_BIN, "serve", "--dir", os.path.join(self.dir, "data"), "--port", str(self.port),
             "--metrics-port", str(self.metrics_port), "--fsync", "everysec", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("idem serve exited: " + open(self.log.name).read())
                time.sleep(0.05)
        raise RuntimeError("idem serve did not start")

    def stop(self):
        self.process.terminate()
        code = self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


@pytest.fixture(scope="module")
def idem():
    server = IdemProcess()
    yield server
    assert server.stop() == 0, "idem serve did not exit cleanly on SIGTERM"


@pytest.fixture(scope="module")
def idem_with_password():
    server = IdemProcess("--requirepass", "s3cret")
    yield server
    assert server.stop() == 0
