// The peer side of vs_rocksdb.py: the same key/value workload as Idem's
// `idem-workloads kv`, against RocksDB or LevelDB, one thread.
//
//   kv_driver rocksdb|leveldb DIR N
//
// Keys: 16 random bytes from splitmix64 (seed 1), values: 64 bytes;
// misses use seed 2. Bloom filters 10 bits/key, no sync (WAL on). Prints one
// line: engine n fill_s get_hit_s get_miss_s reopen_s found
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
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

struct Rocks : Store {
    std::unique_ptr<rocksdb::DB> db;
    explicit Rocks(const std::string &dir) {
        rocksdb::Options options;
        options.create_if_missing = true;
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

int main(int argc, char **argv) {
    if (argc != 4) { std::fprintf(stderr, "usage: kv_driver rocksdb|leveldb DIR N\n"); return 2; }
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
