# Every target installs what it needs on a fresh Debian machine with Swift.
SWIFT ?= swift
DATA_DIR ?= ./idem-data

.PHONY: deps build test run release benchmarks fuzz clean

# The two C libraries the engine links (lz4, zstd); apt only when missing.
deps:
	@if ! pkg-config --exists liblz4 libzstd 2>/dev/null; then \
		echo "installing liblz4-dev libzstd-dev"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq liblz4-dev libzstd-dev pkg-config; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq liblz4-dev libzstd-dev pkg-config; fi; \
	fi

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) test

release: deps
	$(SWIFT) build -c release

# Opens (creating) the embedded default data directory and runs a smoke
# round trip through the engine; the network server replaces this later.
run: release
	.build/release/idem smoke --dir $(DATA_DIR)

benchmarks: deps
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark --target EngineBenchmarks

clean:
	rm -rf .build Benchmarks/.build Fuzz/.build
