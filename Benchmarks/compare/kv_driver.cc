// The peer side of vs_rocksdb.py: the same key/value workload as Idem's
// `idem-workloads kv`, against RocksDB or LevelDB, one thread.
//
//   kv_driver rocksdb|leveldb DIR N
//   kv_driver rocksdb|leveldb crash|recover DIR N
//   kv_driver rocksdb ttl DIR N
//
// Keys: 16 random bytes from splitmix64 (seed 1), values: 64 bytes;
// misses use seed 2. Bloom filters 10 bits/key, no sync (WAL on). Prints one
// line: engine n fill_s get_hit_s get_miss_s reopen_s found
//
// crash: N puts into a 256 MB write buffer, then _exit without closing;
// recover (a new process): time the open (WAL replay), check every key.
// Prints: engine n open_s found
//
// ttl (RocksDB only; LevelDB has no way to drop expired keys but deleting
// them one by one): values carry their expiry (8 bytes, spread over 48 h by
// splitmix64 seed 3), a compaction filter drops expired ones. After the fill
// and its compactions settle, the clock moves 24 h on and a full manual
// compaction removes the expired half. Prints:
// engine n seconds bytes_before bytes_after read_bytes written_bytes live_checked
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        state += 0x9E3779B97F4A7C15ULL;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
};

static std::vector<std::string> keys(uint64_t seed, size_t n) {
    SplitMix64 generator{seed};
    std::vector<std::string> out(n);
    for (auto &key : out) {
        uint64_t a = generator.next(), b = generator.next();
        key.assign(16, '\0');
        std::memcpy(&key[0], &a, 8);
        std::memcpy(&key[8], &b, 8);
    }
    return out;
}

static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Store {
    virtual ~Store() = default;
    virtual void put(const std::string &k, const std::string &v) = 0;
    virtual bool get(const std::string &k, std::string *v) = 0;
};

// The expiry clock the TTL filter compares against (milliseconds).
static std::atomic<int64_t> now_ms{1700000000000LL};

static int64_t expiry_of(const rocksdb::Slice &value) {
    int64_t expiry = 0;
    if (value.size() >= 8) std::memcpy(&expiry, value.data(), 8);
    return expiry;
}

struct ExpiryFilter : rocksdb::CompactionFilter {
    bool Filter(int, const rocksdb::Slice &, const rocksdb::Slice &value, std::string *, bool *) const override {
        return expiry_of(value) <= now_ms.load();
    }
    const char *Name() const override { return "ExpiryFilter"; }
};

static ExpiryFilter expiry_filter;
static size_t write_buffer = 0;  // 0: the engine's default

struct Rocks : Store {
    std::unique_ptr<rocksdb::DB> db;
    explicit Rocks(const std::string &dir) {
        rocksdb::Options options;
        options.create_if_missing = true;
        options.compaction_filter = &expiry_filter;
        if (write_buffer) options.write_buffer_size = write_buffer;
        rocksdb::BlockBasedTableOptions table;
        table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
        options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
        rocksdb::DB *raw = nullptr;
        auto status = rocksdb::DB::Open(options, dir, &raw);
        if (!status.ok()) { std::fprintf(stderr, "%s\n", status.ToString().c_str()); std::exit(1); }
        db.reset(raw);
    }
    void put(const std::string &k, const std::string &v) override { db->Put(rocksdb::WriteOptions(), k, v); }
    bool get(const std::string &k, std::string *v) override { return db->Get(rocksdb::ReadOptions(), k, v).ok(); }
};

struct Level : Store {
    std::unique_ptr<leveldb::DB> db;
    std::unique_ptr<const leveldb::FilterPolicy> filter;
    explicit Level(const std::string &dir) : filter(leveldb::NewBloomFilterPolicy(10)) {
        leveldb::Options options;
        options.create_if_missing = true;
        options.filter_policy = filter.get();
        if (write_buffer) options.write_buffer_size = write_buffer;
        leveldb::DB *raw = nullptr;
        auto status = leveldb::DB::Open(options, dir, &raw);
        if (!status.ok()) { std::fprintf(stderr, "%s\n", status.ToString().c_str()); std::exit(1); }
        db.reset(raw);
    }
    void put(const std::string &k, const std::string &v) override { db->Put(leveldb::WriteOptions(), k, v); }
    bool get(const std::string &k, std::string *v) override { return db->Get(leveldb::ReadOptions(), k, v).ok(); }
};

static std::unique_ptr<Store> open(const std::string &engine, const std::string &dir) {
    if (engine == "rocksdb") return std::make_unique<Rocks>(dir);
    return std::make_unique<Level>(dir);
}

static uint64_t directory_bytes(const std::string &dir) {
    uint64_t total = 0;
    for (auto &entry : std::filesystem::recursive_directory_iterator(dir))
        if (entry.is_regular_file()) total += entry.file_size();
    return total;
}

static std::pair<uint64_t, uint64_t> process_io() {
    std::ifstream io("/proc/self/io");
    std::string name;
    uint64_t number, read = 0, written = 0;
    while (io >> name >> number) {
        if (name == "read_bytes:") read = number;
        if (name == "write_bytes:") written = number;
    }
    return {read, written};
}

static int crash_or_recover(const std::string &engine, const std::string &mode, const std::string &dir, size_t n) {
    write_buffer = 256 << 20;
    auto present = keys(1, n);
    if (mode == "crash") {
        auto store = open(engine, dir);
        std::string value(64, 'v');
        for (auto &key : present) store->put(key, value);
        _exit(0);
    }
    auto start = std::chrono::steady_clock::now();
    auto store = open(engine, dir);
    double elapsed = seconds_since(start);
    std::string out;
    size_t found = 0;
    for (auto &key : present) found += store->get(key, &out);
    std::printf("%s %zu %.4f %zu\n", engine.c_str(), n, elapsed, found);
    return 0;
}

static int ttl(const std::string &dir, size_t n) {
    const int64_t spread = 48LL * 3600000, start_ms = now_ms.load();
    auto present = keys(1, n);
    SplitMix64 expiries{3};
    std::vector<int64_t> expiry(n);
    Rocks store(dir);
    std::string value(64, 'v');
    for (size_t i = 0; i < n; i++) {
        expiry[i] = start_ms + 1 + int64_t(expiries.next() % uint64_t(spread));
        std::memcpy(&value[0], &expiry[i], 8);
        store.put(present[i], value);
    }
    // Let the fill's own flushes and compactions finish first.
    store.db->Flush(rocksdb::FlushOptions());
    uint64_t running = 1, pending = 1;
    while (running || pending) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        store.db->GetIntProperty("rocksdb.num-running-compactions", &running);
        store.db->GetIntProperty("rocksdb.compaction-pending", &pending);
    }
    now_ms += spread / 2;
    uint64_t before = directory_bytes(dir);
    auto io_before = process_io();
    auto start = std::chrono::steady_clock::now();
    rocksdb::CompactRangeOptions compact;
    compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    store.db->CompactRange(compact, nullptr, nullptr);
    double elapsed = seconds_since(start);
    auto io_after = process_io();
    uint64_t after = directory_bytes(dir);
    size_t live = 0;
    std::string out;
    for (size_t i = 0; i < n; i += 97) {
        if (expiry[i] <= now_ms.load() + 3600000) continue;
        if (!store.get(present[i], &out)) { std::fprintf(stderr, "live key %zu lost\n", i); return 1; }
        live++;
    }
    std::printf("rocksdb %zu %.4f %llu %llu %llu %llu %zu\n", n, elapsed, (unsigned long long)before,
                (unsigned long long)after, (unsigned long long)(io_after.first - io_before.first),
                (unsigned long long)(io_after.second - io_before.second), live);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5) {
        std::string engine = argv[1], mode = argv[2], dir = argv[3];
        size_t n = std::strtoull(argv[4], nullptr, 10);
        if (mode == "crash" || mode == "recover") return crash_or_recover(engine, mode, dir, n);
        if (mode == "ttl" && engine == "rocksdb") return ttl(dir, n);
    }
    if (argc != 4) {
        std::fprintf(stderr, "usage: kv_driver rocksdb|leveldb DIR N | rocksdb|leveldb crash|recover DIR N | rocksdb ttl DIR N\n");
        return 2;
    }
    std::string engine = argv[1], dir = argv[2];
    size_t n = std::strtoull(argv[3], nullptr, 10);
    auto present = keys(1, n), absent = keys(2, n);
    std::string value(64, 'v'), out;
    auto store = open(engine, dir);
    auto start = std::chrono::steady_clock::now();
    for (auto &key : present) store->put(key, value);
    double fill = seconds_since(start);
    size_t found = 0;
    start = std::chrono::steady_clock::now();
    for (auto &key : present) found += store->get(key, &out);
    double hit = seconds_since(start);
    start = std::chrono::steady_clock::now();
    for (auto &key : absent) found += store->get(key, &out) ? 1000000000 : 0;
    double miss = seconds_since(start);
    store.reset();
    start = std::chrono::steady_clock::now();
    store = open(engine, dir);
    double reopen = seconds_since(start);
    std::printf("%s %zu %.3f %.3f %.3f %.3f %zu\n", engine.c_str(), n, fill, hit, miss, reopen, found);
    return 0;
}
