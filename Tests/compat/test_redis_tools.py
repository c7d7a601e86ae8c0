"""redis-cli and redis-benchmark against idem, unmodified."""
import subprocess


def cli(idem, *args, stdin=None):
    result = subprocess.run(["redis-cli", "-p", str(idem.port), *args], input=stdin, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_commands(idem):
    assert cli(idem, "PING") == "PONG\n"
    assert cli(idem, "SET", "tool:1", "v", "NX", "EX", "100") == "OK\n"
    assert cli(idem, "SET", "tool:1", "v", "NX", "EX", "100") == "\n"
    assert cli(idem, "GET", "tool:1") == "v\n"
    assert cli(idem, "TTL", "tool:1") == "100\n"
    state, token, attempt, recovery = cli(idem, "IDEM.BEGIN", "cli-1").split("\n")[:4]
    assert (state, len(token), attempt, recovery) == ("acquired", 32, "1", "")
    assert cli(idem, "IDEM.COMPLETE", "cli-1", token, "done") == "OK\n"
    assert cli(idem, "IDEM.BEGIN", "cli-1") == "completed\ndone\n"


def test_cli_scan_mode(idem):
    for index in range(50):
        cli(idem, "SET", f"scan:{index}", "x")
    keys = cli(idem, "--scan", "--pattern", "scan:*").split()
    assert sorted(keys) == sorted(f"scan:{index}" for index in range(50))


def test_cli_reads_commands_from_stdin(idem):
    output = cli(idem, stdin="SET piped 1\nGET piped\nDEL piped\n")
    assert output.split() == ["OK", "1", "1"]


def test_cli_interactive_handshake(idem):
    # Interactive mode asks COMMAND DOCS first; it must keep working after.
    output = subprocess.run(["redis-cli", "-p", str(idem.port)], input="PING\nQUIT\n", capture_output=True,
                            text=True, timeout=30)
    assert "PONG" in output.stdout


def test_benchmark_smoke(idem):
    result = subprocess.run(["redis-benchmark", "-p", str(idem.port), "-n", "2000", "-c", "10", "-P", "4", "-q",
                             "-t", "set,get", "-r", "1000"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SET:" in result.stdout and "GET:" in result.stdout and "requests per second" in result.stdout
