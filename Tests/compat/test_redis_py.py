"""redis-py against idem: the default (RESP3) client and protocol=2."""
import pytest
import redis

import socket
import subprocess
import time

from conftest import IDEM_BIN, IdemProcess, free_port

PROTOCOLS = [None, 2, 3]


@pytest.fixture(params=PROTOCOLS, ids=["default", "resp2", "resp3"])
def client(request, idem):
    kwargs = {} if request.param is None else {"protocol": request.param}
    connection = redis.Redis(port=idem.port, decode_responses=True, **kwargs)
    connection.flushall()
    yield connection
    connection.close()


def test_dedup_with_set_nx_ex(client):
    assert client.set("msg:1", "1", nx=True, ex=86400) is True
    assert client.set("msg:1", "1", nx=True, ex=86400) is None
    assert 86399 <= client.ttl("msg:1") <= 86400
    assert client.get("msg:1") == "1"
    assert client.exists("msg:1", "msg:2") == 1
    assert client.delete("msg:1", "msg:2") == 1
    assert client.get("msg:1") is None


def test_string_commands(client):
    assert client.set("a", "1") is True
    assert client.set("a", "2", xx=True, get=True) == "1"
    assert client.setnx("b", "x") is True
    assert client.setex("c", 100, "y") is True
    assert client.psetex("d", 5000, "z") is True
    assert 4000 < client.pttl("d") <= 5000
    assert client.mget("a", "b", "nope") == ["2", "x", None]
    assert client.getdel("b") == "x"
    assert client.type("a") == "string"
    assert client.expire("a", 100, nx=True) is True
    assert client.expire("a", 50, gt=True) is False
    assert client.persist("a") is True
    assert client.ttl("a") == -1
    assert client.ttl("nope") == -2
    assert client.dbsize() == 3


def test_errors_are_exceptions(client):
    with pytest.raises(redis.ResponseError, match="syntax error"):
        client.execute_command("SET", "k", "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command("NOSUCH")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.execute_command("IDEM.BEGIN", "rec")
        client.get("rec")
    assert client.ping() is True


def test_pipeline_without_transaction(client):
    pipe = client.pipeline(transaction=False)
    for index in range(1000):
        pipe.set(f"p:{index}", index, nx=True, ex=3600)
        pipe.get(f"p:{index}")
    replies = pipe.execute()
    assert replies[0::2] == [True] * 1000
    assert replies[1::2] == [str(index) for index in range(1000)]


def test_scan_iter(client):
    for index in range(300):
        client.set(f"user:{index}", "x")
    client.set("other", "y")
    assert sorted(client.scan_iter(match="user:*", count=50)) == sorted(f"user:{index}" for index in range(300))
    assert len(list(client.scan_iter(count=7))) == 301


def test_idempotency_round_trip(client):
    state, token, attempt, recovery = client.execute_command("IDEM.BEGIN", "pay-1", "FP", "h1", "LEASE", "30000")
    assert (state, attempt, recovery) == ("acquired", 1, None)
    assert client.execute_command("IDEM.BEGIN", "pay-1", "FP", "h1")[0] == "in_progress"
    with pytest.raises(redis.ResponseError, match="MISMATCH"):
        client.execute_command("IDEM.BEGIN", "pay-1", "FP", "other")
    assert client.execute_command("IDEM.COMPLETE", "pay-1", token, '{"id":7}') in (True, "OK")
    assert client.execute_command("IDEM.BEGIN", "pay-1") == ["completed", '{"id":7}']
    record = client.execute_command("IDEM.GET", "pay-1")
    fields = record if isinstance(record, dict) else dict(zip(record[0::2], record[1::2]))
    assert fields["state"] == "completed" and fields["response"] == '{"id":7}' and fields["attempt"] == 1
    with pytest.raises(redis.ResponseError, match="LEASELOST"):
        client.execute_command("IDEM.EXTEND", "pay-1", "0" * 32, "1000")
    assert client.execute_command("IDEM.FORGET", "pay-1") == 1


def test_connection_commands(client):
    assert client.echo("hi") == "hi"
    assert client.client_setname("worker-7") is True
    assert client.client_getname() == "worker-7"
    assert isinstance(client.client_id(), int)
    assert any(entry.get("name") == "worker-7" for entry in client.client_list())
    info = client.info()
    assert info["redis_version"] == "7.2.0" and "connected_clients" in info
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.time()[0] > 1_700_000_000


def test_password(idem_with_password):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=idem_with_password.port, password="wrong").ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=idem_with_password.port, protocol=2).get("k")
    for protocol in (2, 3):
        authenticated = redis.Redis(port=idem_with_password.port, password="s3cret", protocol=protocol)
        assert authenticated.set("k", "v") is True
        assert authenticated.get("k") == b"v"


def test_allocator_report(idem):
    # The server links jemalloc and starts its background purge by default
    # (memory freed after a load goes back to the OS while idle).
    client = redis.Redis(port=idem.port, decode_responses=True)
    memory = client.info("memory")
    assert memory["mem_allocator"].startswith("jemalloc-")
    assert 0 < memory["allocator_allocated"] <= memory["allocator_active"] <= memory["allocator_resident"]
    assert client.config_get("jemalloc-bg-thread") == {"jemalloc-bg-thread": "yes"}
    client.close()


def test_allocator_background_purge_can_be_turned_off():
    server = IdemProcess("--jemalloc-bg-thread", "no")
    try:
        client = redis.Redis(port=server.port, decode_responses=True)
        assert client.config_get("jemalloc-bg-thread") == {"jemalloc-bg-thread": "no"}
        assert client.info("memory")["mem_allocator"].startswith("jemalloc-")
        client.close()
    finally:
        assert server.stop() == 0



def test_sigterm_right_after_start_is_a_graceful_shutdown(tmp_path):
    # The server must not accept a connection before SIGTERM means "shut
    # down gracefully": a supervisor stopping it the moment it answers must
    # not kill it outright (exit by signal, skipping the last log sync).
    # The window was narrow, so the test tries many times and sends the
    # signal as soon as a connection is accepted.
    for attempt in range(40):
        port = free_port()
        process = subprocess.Popen(
            [IDEM_BIN, "serve", "--dir", str(tmp_path / str(attempt)), "--port", str(port), "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.time() < deadline, "idem serve did not start"
                time.sleep(0.001)
        process.terminate()
        assert process.wait(timeout=30) == 0, "killed by SIGTERM before its handler was installed"
