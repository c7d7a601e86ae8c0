# Every target installs what it needs on a fresh Debian machine with Swift.
SWIFT ?= swift
DATA_DIR ?= ./idem-data

.PHONY: deps compat-deps build test run release benchmarks fuzz clean

# The C libraries: lz4 and zstd (the engine), jemalloc (the server's
# allocator); apt only when missing.
deps:
	@if ! pkg-config --exists liblz4 libzstd jemalloc 2>/dev/null; then \
		echo "installing liblz4-dev libzstd-dev libjemalloc-dev"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq liblz4-dev libzstd-dev libjemalloc-dev pkg-config; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq liblz4-dev libzstd-dev libjemalloc-dev pkg-config; fi; \
	fi

# What the compatibility suite drives the server with: redis-cli and
# redis-benchmark (Debian's redis-tools), redis-py and pytest (PyPI).
compat-deps:
	@if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then \
		echo "installing redis-tools"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-tools; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq redis-tools; fi; \
	fi
	@python3 -c "import redis, pytest" 2>/dev/null || python3 -m pip install -q "redis>=5" pytest

build: deps
	$(SWIFT) build

# Swift unit and integration tests, then real Redis clients (redis-py with
# RESP3 and RESP2, redis-cli, redis-benchmark) against the built server.
test: deps compat-deps
	$(SWIFT) test
	$(SWIFT) build --product idem
	IDEM_BIN=.build/debug/idem python3 -m pytest -q Tests/compat

release: deps
	$(SWIFT) build -c release

# The server on the embedded default data directory, port 6379 (redis-cli
# works with no arguments); Ctrl-C stops it cleanly. Extra flags: ARGS="...".
run: release
	.build/release/idem serve --dir $(DATA_DIR) $(ARGS)

benchmarks: deps
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark --target EngineBenchmarks

clean:
	rm -rf .build Benchmarks/.build Fuzz/.build
