// Macro workloads for the time-partitioned LSM, printed as Markdown tables
// for BENCHMARKS.md. Run (release build):
//
//   cd Benchmarks && swift run -c release idem-workloads [keys] [scratch-dir]
//
// Defaults: 5,000,000 keys, scratch under /tmp. Every scenario uses its
// own directory and deletes it afterwards.
import Foundation
import IdemEngine
import Idempotency

// `idem-workloads rss DIR`: open DIR in a fresh process and report its
// resident memory (used by the reopen scenario below).
if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "rss" {
    let baseline = residentBytes()
    let started = DispatchTime.now().uptimeNanoseconds
    var rssOptions = EngineOptions(durability: .never)
    rssOptions.backgroundMaintenance = false
    let engine = try Engine.open(directory: CommandLine.arguments[2], options: rssOptions)
    let openSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    print("\(openSeconds) \(residentBytes()) \(baseline) \(engine.statistics.tables)")
    try engine.close()
    exit(0)
}

/// `count` 16-byte keys from splitmix64 `seed` (two words each): the keys
/// kv_driver.cc generates for the same seed.
func randomKeys(_ count: Int, seed: UInt64) -> [[UInt8]] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in
        let (a, b) = (generator.next(), generator.next())
        return withUnsafeBytes(of: a) { Array($0) } + withUnsafeBytes(of: b) { Array($0) }
    }
}

// `idem-workloads kv DIR N`: the workload of Benchmarks/compare/kv_driver.cc
// (same keys: splitmix64 seed 1 for present keys, seed 2 for absent ones;
// 64-byte values; fsync never; one thread). Prints the driver's line:
// engine n fill_s get_hit_s get_miss_s reopen_s found
if CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "kv" {
    let directory = CommandLine.arguments[2]
    let count = Int(CommandLine.arguments[3]) ?? 1_000_000
    let present = randomKeys(count, seed: 1), absent = randomKeys(count, seed: 2)
    let value = [UInt8](repeating: UInt8(ascii: "v"), count: 64)
    var options = EngineOptions(durability: .never)
    // IDEM_HOT_POINT_INDEX=0: hot tables with the bloom filter alone (A/B runs).
    options.hotPointIndex = ProcessInfo.processInfo.environment["IDEM_HOT_POINT_INDEX"] != "0"
    var engine = try Engine.open(directory: directory, options: options)
    let fill = try await asyncSeconds { for key in present { try await engine.put(key, value) } }
    var found = 0
    let hit = try seconds { for key in present where try engine.get(key) != nil { found += 1 } }
    let miss = try seconds { for key in absent where try engine.get(key) != nil { found += 1_000_000_000 } }
    try engine.close()
    let reopen = try seconds { engine = try Engine.open(directory: directory, options: options) }
    try engine.close()
    print(String(format: "idem %d %.3f %.3f %.3f %.3f %d", count, fill, hit, miss, reopen, found))
    exit(0)
}

/// CPU time of the whole process so far (user and system).
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// CPU time of the calling thread so far.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

// `idem-workloads merge DIR N`: one merge of four tables — N keys in all,
// N/4 random 16-byte keys (as `kv`, seeds 1–4) per flushed table, with
// 64-byte values, expiring in a day — timed alone: the tables are written
// with merges off, the engine reopened with the default trigger (4), and
// `runMaintenance()` does the one merge. Prints: engine n seconds
// cpu_seconds (the merging thread's; wall time adds the table's fsync)
// mb_read_per_s entries_per_s flush_cpu_seconds (the process's, over the
// four flushes before: nothing else runs then). What the background thread spends per merge
// is CPU the event loops and clients share on a small machine.
if CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "merge" {
    let directory = CommandLine.arguments[2]
    let count = Int(CommandLine.arguments[3]) ?? 1_000_000
    let value = [UInt8](repeating: UInt8(ascii: "v"), count: 64)
    var options = EngineOptions(durability: .never)
    options.backgroundMaintenance = false
    options.compactionTrigger = 1_000
    var engine = try Engine.open(directory: directory, options: options)
    let expiry = Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000
    var flushCPU = 0.0
    for seed in 1...4 {
        for key in randomKeys(count / 4, seed: UInt64(seed)) { try await engine.put(key, value, expiresAt: expiry) }
        let before = processCPUSeconds()
        try await engine.flush()
        flushCPU += processCPUSeconds() - before
    }
    try engine.close()
    options.compactionTrigger = EngineOptions().compactionTrigger
    engine = try Engine.open(directory: directory, options: options)
    var report = MaintenanceReport()
    let cpuBefore = threadCPUSeconds()
    let elapsed = try seconds { report = try engine.runMaintenance() }
    let cpu = threadCPUSeconds() - cpuBefore
    guard report.compactions == 1 else { fatalError("expected one merge, got \(report)") }
    print(String(format: "idem %d %.3f %.3f %.1f %.0f %.3f", count, elapsed, cpu, Double(report.compactionBytesRead) / 1e6 / elapsed,
                 Double(count) / elapsed, flushCPU))
    try engine.close()
    exit(0)
}

// `idem-workloads lookups DIR N`: point lookups served by tables alone —
// N keys (as `kv`) filled, flushed and reopened with the default 64 MiB
// block cache; after a warm pass, three timed passes over the keys in a
// shuffled order, and three over as many absent keys (seed 2). Prints:
// engine n best_us_per_hit best_us_per_miss tables found.
// IDEM_HOT_POINT_INDEX=0 as for `kv`.
if CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "lookups" {
    let directory = CommandLine.arguments[2]
    let count = Int(CommandLine.arguments[3]) ?? 1_000_000
    var present = randomKeys(count, seed: 1)
    let absent = randomKeys(count, seed: 2)
    let value = [UInt8](repeating: UInt8(ascii: "v"), count: 64)
    var options = EngineOptions(durability: .never)
    options.hotPointIndex = ProcessInfo.processInfo.environment["IDEM_HOT_POINT_INDEX"] != "0"
    var engine = try Engine.open(directory: directory, options: options)
    for key in present { try await engine.put(key, value) }
    try await engine.flush()
    try engine.close()
    engine = try Engine.open(directory: directory, options: options)
    var generator = SplitMix64(seed: 4)
    present.shuffle(using: &generator)
    var found = 0
    for key in present where try engine.get(key) != nil { found += 1 }
    var bestHit = Double.infinity, bestMiss = Double.infinity
    for _ in 0..<3 {
        bestHit = min(bestHit, try seconds { for key in present where try engine.get(key) != nil { found += 1 } })
        bestMiss = min(bestMiss, try seconds { for key in absent where try engine.get(key) != nil { found += 1_000_000_000 } })
    }
    print(String(format: "idem %d %.3f %.3f %d %d", count, bestHit * 1e6 / Double(count), bestMiss * 1e6 / Double(count),
                 engine.statistics.tables, found))
    try engine.close()
    exit(0)
}

// `idem-workloads shared-lookups DIR N`: what two threads reading one
// engine cost each other. Two engines (DIR/a, DIR/b) are filled with the
// same N keys (as `lookups`) and reopened; then the best of three timed
// passes over the keys, in a shuffled order per thread: one thread on a;
// two threads, both on a; two threads, one on each. The last pair shares
// the vCPUs and the memory bus but no object, lock or cache line of the
// engine, so the difference between the two-thread rows is what the
// sharing costs (reference counts, locks, block cache shards). Prints
// µs per hit for each row (per thread: each thread does N lookups).
if CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "shared-lookups" {
    let directory = CommandLine.arguments[2]
    let count = Int(CommandLine.arguments[3]) ?? 1_000_000
    let keys = randomKeys(count, seed: 1)
    let value = [UInt8](repeating: UInt8(ascii: "v"), count: 64)
    var options = EngineOptions(durability: .never)
    if let megabytes = ProcessInfo.processInfo.environment["IDEM_BLOCK_CACHE_MB"].flatMap(Int.init) {
        options.blockCacheSize = megabytes << 20
    }
    var opened: [Engine] = []
    for name in ["a", "b"] {
        let engine = try Engine.open(directory: directory + "/" + name, options: options)
        for key in keys { try await engine.put(key, value) }
        try await engine.flush()
        try engine.close()
        opened.append(try Engine.open(directory: directory + "/" + name, options: options))
    }
    let engines = opened
    let orders: [[[UInt8]]] = (0..<2).map { thread in
        var generator = SplitMix64(seed: 10 + UInt64(thread))
        return keys.shuffled(using: &generator)
    }
    for engine in engines { for key in keys where try engine.get(key) == nil { fatalError("lost a key") } }
    func pass(_ assignment: [Int]) -> Double {
        var best = Double.infinity
        for _ in 0..<3 {
            let elapsed = seconds {
                DispatchQueue.concurrentPerform(iterations: assignment.count) { thread in
                    let engine = engines[assignment[thread]]
                    var found = 0
                    for key in orders[thread] where (try? engine.get(key)) != nil { found += 1 }
                    precondition(found == count)
                }
            }
            best = min(best, elapsed)
        }
        return best * 1e6 / Double(count)
    }
    let one = pass([0]), shared = pass([0, 0]), apart = pass([0, 1])
    print(String(format: "one thread %.3f us/hit; two threads on one engine %.3f; two threads on two engines %.3f", one, shared, apart))
    for engine in engines { try engine.close() }
    exit(0)
}

// `idem-workloads ttl DIR N`: the TTL case of vs_rocksdb.py. N keys
// (splitmix64 seed 1) whose expiries (seed 3) are spread uniformly over 48
// hours, flushed to tables; then the clock moves 24 h on and the engine
// runs its maintenance once — the time and the I/O it takes until every
// ended partition (about half the keys) is gone from disk. Prints:
// engine n seconds bytes_before bytes_after read_bytes written_bytes live_checked
// freed_seconds (until the dropped files are closed too: see below)
if CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "ttl" {
    let directory = CommandLine.arguments[2]
    let count = Int(CommandLine.arguments[3]) ?? 1_000_000
    let ttlSpread: Int64 = 48 * 3_600_000
    let clock = ManualClock()
    let start = clock.nowMilliseconds()
    var options = EngineOptions(durability: .never)
    options.clock = clock
    // The jump of 24 h would also make every table due for the cold tier
    // (a rewrite that in real time happens hours before anything expires);
    // keep tables hot so the figure is the expiry work alone.
    options.coldAfter = 2 * ttlSpread
    var engine = try Engine.open(directory: directory, options: options)
    var keyGenerator = SplitMix64(seed: 1), expiryGenerator = SplitMix64(seed: 3)
    var expiries: [Int64] = []
    expiries.reserveCapacity(count)
    let value = [UInt8](repeating: UInt8(ascii: "v"), count: 64)
    for _ in 0..<count {
        let (a, b) = (keyGenerator.next(), keyGenerator.next())
        let expiry = start + 1 + Int64(expiryGenerator.next() % UInt64(ttlSpread))
        expiries.append(expiry)
        try await engine.put(withUnsafeBytes(of: a) { Array($0) } + withUnsafeBytes(of: b) { Array($0) }, value, expiresAt: expiry)
    }
    try await engine.flush()
    try engine.close()
    // Reopen 24 h later with maintenance left to this thread, so the run
    // below is exactly the work of removing what expired.
    clock.advance(byMilliseconds: ttlSpread / 2)
    options.backgroundMaintenance = false
    engine = try Engine.open(directory: directory, options: options)
    // The first engine's files are closed in the background: not part of the figure.
    engine.waitForReclaimedFiles()
    let before = directorySize(directory), ioBefore = processIO()
    let elapsed = try seconds { try engine.runMaintenance() }
    // The files are unlinked and out of every read path; their closes (the
    // moment the filesystem frees the blocks — a device trim on a `discard`
    // mount) run on the engine's reclaimer thread. Until that is done too:
    let reclaimed = elapsed + (try seconds { engine.waitForReclaimedFiles() })
    let ioAfter = processIO(), after = directorySize(directory)
    // The keys that must survive still read back.
    keyGenerator = SplitMix64(seed: 1)
    var live = 0
    for index in 0..<count {
        let key = withUnsafeBytes(of: keyGenerator.next()) { Array($0) } + withUnsafeBytes(of: keyGenerator.next()) { Array($0) }
        guard index % 97 == 0, expiries[index] > clock.nowMilliseconds() + options.partitionWidth else { continue }
        guard try engine.get(key) != nil else { fatalError("live key \(index) lost") }
        live += 1
    }
    try engine.close()
    print("idem \(count) \(String(format: "%.4f", elapsed)) \(before) \(after) \(ioAfter.read - ioBefore.read) \(ioAfter.written - ioBefore.written) \(live) \(String(format: "%.4f", reclaimed))")
    exit(0)
}

// `idem-workloads crash DIR N` then `idem-workloads recover DIR N`: N puts
// into a memtable large enough to hold them all, then the process dies
// without closing (the WAL is in the OS, not synced); the second process
// times the open (WAL replay) and checks every key. Prints:
// engine n open_seconds found
if CommandLine.arguments.count == 4 && ["crash", "recover"].contains(CommandLine.arguments[1]) {
    let directory = CommandLine.arguments[2]
    let count = Int(CommandLine.arguments[3]) ?? 500_000
    var options = EngineOptions(durability: .never)
    options.memtableSize = 256 << 20
    let keys = randomKeys(count, seed: 1)
    if CommandLine.arguments[1] == "crash" {
        let engine = try Engine.open(directory: directory, options: options)
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: 64)
        for key in keys { try await engine.put(key, value) }
        _exit(0)
    }
    var engine: Engine?
    let elapsed = try seconds { engine = try Engine.open(directory: directory, options: options) }
    let found = try keys.reduce(0) { try $0 + (engine!.get($1) != nil ? 1 : 0) }
    try engine!.close()
    print("idem \(count) \(String(format: "%.4f", elapsed)) \(found)")
    exit(0)
}

// `idem-workloads memtable N`: N puts and N gets against the memtable only.
if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "memtable" {
    let count = Int(CommandLine.arguments[2]) ?? 1_000_000
    let directory = NSTemporaryDirectory() + "idem-memtable-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let engine = try Engine.open(directory: directory, options: EngineOptions(durability: .never))
    var generator = SplitMix64(seed: 1)
    let keys = (0..<count).map { _ in (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) } }
    let value = [UInt8](repeating: 1, count: 64)
    let putTime = try await asyncSeconds { for key in keys { try await engine.put(key, value) } }
    var found = 0
    let getTime = try seconds { for key in keys where try engine.get(key) != nil { found += 1 } }
    print("memtable: put \(rate(count, putTime)), get hit \(rate(count, getTime)) (\(found) found)")
    try engine.close()
    exit(0)
}

// `idem-workloads idempotency N`: N begin+complete pairs on fresh keys,
// by 1 and by 64 concurrent callers, under fsync=never and fsync=always.
if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "idempotency" {
    let count = Int(CommandLine.arguments[2]) ?? 100_000
    print("| durability | callers | begin+complete pairs/s | mean latency of a pair |")
    print("|---|---|---|---|")
    for durability in [Durability.never, .always] {
        for callers in [1, 64] {
            let directory = NSTemporaryDirectory() + "idem-pairs-\(getpid())"
            let engine = try Engine.open(directory: directory, options: EngineOptions(durability: durability))
            let store = IdempotencyStore(engine: engine)
            let pairs = durability == .always && callers == 1 ? min(count, 2_000) : count
            let response = Array(String(repeating: "{\"ok\":true}", count: 20).utf8)
            let elapsed = try await asyncSeconds {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for caller in 0..<callers {
                        group.addTask {
                            for index in stride(from: caller, to: pairs, by: callers) {
                                let key = Array("tenant-1:order-\(index)".utf8)
                                guard case .acquired(let token, _, _) = try await store.begin(key, fingerprint: [1, 2, 3]) else {
                                    fatalError("fresh key not acquired")
                                }
                                _ = try await store.complete(key, token: token, response: response)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            print("| \(durability.rawValue) | \(callers) | \(rate(pairs, elapsed)) | \(String(format: "%.1f", elapsed * 1e6 * Double(callers) / Double(pairs))) µs |")
            try engine.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
    exit(0)
}

let keyCount = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 5_000_000 : 5_000_000
let scratch = CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : NSTemporaryDirectory() + "idem-workloads-\(getpid())"
let hour: Int64 = 3_600_000

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func asyncSeconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }
    return 0
}

func processIO() -> (read: Int, written: Int) {
    guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return (0, 0) }
    var read = 0, written = 0
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: " ")
        guard parts.count == 2, let number = Int(parts[1]) else { continue }
        if parts[0] == "read_bytes:" { read = number }
        if parts[0] == "write_bytes:" { written = number }
    }
    return (read, written)
}

func directorySize(_ path: String) -> Int {
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total = 0
    for case let name as String in enumerator {
        total += ((try? FileManager.default.attributesOfItem(atPath: path + "/" + name))?[.size] as? Int) ?? 0
    }
    return total
}

struct Keys {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func next() -> [UInt8] { (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) } }
}

func rate(_ count: Int, _ seconds: Double) -> String {
    let perSecond = Double(count) / seconds
    return perSecond >= 1e6 ? String(format: "%.2fM/s", perSecond / 1e6) : String(format: "%.0fk/s", perSecond / 1e3)
}

func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }

func options(clock: ManualClock, cache: Int = 64 << 20) -> EngineOptions {
    var options = EngineOptions(durability: .never)
    options.clock = clock
    options.blockCacheSize = cache
    options.backgroundMaintenance = true
    options.maintenanceInterval = 50
    return options
}

print("# idem-workloads: \(keyCount) keys, 16 B keys, 64 B values; \(ProcessInfo.processInfo.processorCount) cores")
try? FileManager.default.removeItem(atPath: scratch)
try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: scratch) }

// MARK: 1. Fill over 48 partitions, then point lookups

let clock = ManualClock()
let start = clock.nowMilliseconds()
// Random (incompressible) values, so bytes on disk are not flattered.
var valueGenerator = SplitMix64(seed: 7)
let values = (0..<1024).map { _ in (0..<64).map { _ in UInt8.random(in: 0...255, using: &valueGenerator) } }
let fillDirectory = scratch + "/fill"
var engine = try Engine.open(directory: fillDirectory, options: options(clock: clock))
var keys = Keys(seed: 1)
let fillTime = try await asyncSeconds {
    for index in 0..<keyCount {
        // Expiries spread evenly over 48 hours: 48 hour-wide partitions.
        try await engine.put(keys.next(), values[index & 1023], expiresAt: start + Int64(index % 48) * hour + hour / 2)
    }
}
let flushTime = try await asyncSeconds { try await engine.flush() }
var stats = engine.statistics
print("""

## Fill and flush (\(keyCount) keys, expiries over 48 h, fsync=never, background flushes)

| measure | value |
|---|---|
| fill (puts incl. background flushes) | \(rate(keyCount, fillTime)) (\(String(format: "%.1f", fillTime)) s) |
| final flush | \(String(format: "%.2f", flushTime)) s |
| flushes / tables / partitions | \(stats.maintenance.flushes) / \(stats.tables) / \(stats.partitions) |
| compactions during fill | \(stats.maintenance.compactions) |
| bytes on disk (tables) | \(mb(stats.tableBytes)) = \(String(format: "%.1f", Double(stats.tableBytes) / Double(keyCount))) B/key (raw 80 B/key) |
| write stalls | \(stats.writeStalls) |
| time in flushes / compactions | \(String(format: "%.1f", stats.maintenance.flushSeconds)) s (\(rate(stats.maintenance.flushedEntries, stats.maintenance.flushSeconds)) entries) / \(String(format: "%.1f", stats.maintenance.compactionSeconds)) s (\(mb(Int(stats.maintenance.compactionBytesWritten))) written) |
""")
try engine.close()

func lookups(cache: Int, label: String) async throws {
    let engine = try Engine.open(directory: fillDirectory, options: options(clock: clock, cache: cache))
    let probes = min(keyCount, 1_000_000)
    var hitKeys = Keys(seed: 1)
    let present = (0..<probes).map { _ in hitKeys.next() }
    var missKeys = Keys(seed: 99)
    let absent = (0..<probes).map { _ in missKeys.next() }
    var found = 0
    // Warm-up pass (also fills the block cache where it fits).
    for key in present.prefix(probes / 10) where try engine.get(key) != nil { found += 1 }
    found = 0
    let hitTime = try seconds { for key in present where try engine.get(key) != nil { found += 1 } }
    precondition(found == probes, "lookups found \(found) of \(probes)")
    let missTime = try seconds { for key in absent where try engine.get(key) != nil { found += 1 } }
    let s = engine.statistics
    print("| \(label) | \(rate(probes, hitTime)) (\(String(format: "%.2f", hitTime * 1e6 / Double(probes))) µs) | \(rate(probes, missTime)) (\(String(format: "%.2f", missTime * 1e6 / Double(probes))) µs) | \(s.blockCacheHits * 100 / max(1, s.blockCacheHits + s.blockCacheMisses)) % |")
    try engine.close()
}

print("""

## Point lookups, all data in tables (\(min(keyCount, 1_000_000)) random probes, one thread)

| block cache | get hit | get miss | cache hit rate |
|---|---|---|---|
""")
try await lookups(cache: 1 << 30, label: "1 GiB (warm: everything fits)")
try await lookups(cache: 0, label: "none (every block read from the OS page cache)")

// MARK: 2. Partition drop of one partition holding 1M keys

let dropKeys = min(keyCount, 1_000_000)
let dropDirectory = scratch + "/drop"
engine = try Engine.open(directory: dropDirectory, options: options(clock: clock))
keys = Keys(seed: 3)
for index in 0..<dropKeys { try await engine.put(keys.next(), values[index & 1023], expiresAt: start + hour) }
try await engine.flush()
let bytesBefore = directorySize(dropDirectory)
clock.advance(byMilliseconds: 2 * hour)
var dropReport = MaintenanceReport()
let dropTime = try seconds { dropReport = try engine.runMaintenance() }
let bytesAfter = directorySize(dropDirectory)
print("""

## Whole-partition expiry

| measure | value |
|---|---|
| keys in the partition | \(dropKeys) |
| files dropped | \(dropReport.filesDropped) |
| time to drop (manifest edit + unlink) | \(String(format: "%.2f", dropTime * 1000)) ms |
| directory size before / after | \(mb(bytesBefore)) / \(mb(bytesAfter)) |
""")
try engine.close()

// MARK: 3. Compaction throughput

let compactionDirectory = scratch + "/compaction"
var compactionOptions = options(clock: clock)
compactionOptions.backgroundMaintenance = false
engine = try Engine.open(directory: compactionDirectory, options: compactionOptions)
let roundKeys = min(keyCount, 1_000_000) / 4
for round in 0..<3 {
    keys = Keys(seed: 10 + UInt64(round))
    for index in 0..<roundKeys { try await engine.put(keys.next(), values[index & 1023], expiresAt: clock.nowMilliseconds() + 10 * hour) }
    try await engine.flush() // 3 tables: below the default trigger of 4
}
keys = Keys(seed: 13)
for index in 0..<roundKeys { try await engine.put(keys.next(), values[index & 1023], expiresAt: clock.nowMilliseconds() + 10 * hour) }
var compactionReport = MaintenanceReport()
let compactionTime = try await asyncSeconds {
    try await engine.flush()
    compactionReport = engine.statistics.maintenance
}
print("""

## Compaction (4 flushed tables of \(roundKeys) keys in one partition → 1)

| measure | value |
|---|---|
| compactions | \(compactionReport.compactions) |
| read / written | \(mb(Int(compactionReport.compactionBytesRead))) / \(mb(Int(compactionReport.compactionBytesWritten))) |
| time (last flush + compaction) | \(String(format: "%.2f", compactionTime)) s |
| throughput (bytes read) | \(String(format: "%.1f", Double(compactionReport.compactionBytesRead) / 1e6 / compactionTime)) MB/s |
""")
try engine.close()

// MARK: 4. Tiers on a realistic idempotency workload

let tierDirectory = scratch + "/tiers"
var tierOptions = options(clock: clock)
tierOptions.backgroundMaintenance = false
tierOptions.coldAfter = hour
engine = try Engine.open(directory: tierDirectory, options: tierOptions)
var generator = SplitMix64(seed: 21)
let statuses = ["succeeded", "requires_action", "processing", "canceled"]
let tierKeys = min(keyCount, 200_000)
var rawBytes = 0
for index in 0..<tierKeys {
    let tenant = "tenant-\(Int.random(in: 1...40, using: &generator))"
    let uuid = UUID().uuidString.lowercased()
    var body = "{\"id\":\"pi_\(uuid.prefix(24))\",\"object\":\"payment_intent\",\"amount\":\(Int.random(in: 100...99_999, using: &generator)),"
    body += "\"currency\":\"eur\",\"status\":\"\(statuses.randomElement(using: &generator)!)\",\"created\":\(1_764_000_000 + index),"
    body += "\"metadata\":{\"order_id\":\"ord_\(Int.random(in: 1...9_999_999, using: &generator))\"},\"charges\":["
    for charge in 0..<Int.random(in: 0...12, using: &generator) {
        body += "{\"id\":\"ch_\(charge)\(uuid.suffix(12))\",\"amount\":\(Int.random(in: 100...9999, using: &generator)),\"paid\":true,\"outcome\":{\"network_status\":\"approved_by_network\",\"risk_level\":\"normal\"}},"
    }
    body += "]}"
    let key = Array("\(tenant):\(uuid)".utf8)
    rawBytes += key.count + body.utf8.count
    try await engine.put(key, Array(body.utf8), expiresAt: clock.nowMilliseconds() + 24 * hour)
}
try await engine.flush()
let hotBytes = engine.statistics.tableBytes
clock.advance(byMilliseconds: 2 * hour)
try engine.runMaintenance()
let coldBytes = engine.statistics.tableBytes
print("""

## Compression by tier (\(tierKeys) records: `tenant-N:uuid` keys, JSON bodies of 100–2000 B)

| tier | bytes on disk | per record | ratio vs raw |
|---|---|---|---|
| raw (keys + values) | \(mb(rawBytes)) | \(rawBytes / tierKeys) B | 1.00 |
| hot (lz4, 8 KiB blocks) | \(mb(hotBytes)) | \(hotBytes / tierKeys) B | \(String(format: "%.2f", Double(rawBytes) / Double(hotBytes))) |
| cold (zstd 6, 32 KiB blocks) | \(mb(coldBytes)) | \(coldBytes / tierKeys) B | \(String(format: "%.2f", Double(rawBytes) / Double(coldBytes))) |
""")
try engine.close()

// MARK: 5. Memory and reopen (in a fresh process)

let child = Process()
child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
child.arguments = ["rss", fillDirectory]
let pipe = Pipe()
child.standardOutput = pipe
try child.run()
child.waitUntilExit()
let fields = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    .split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Double($0) }
if fields.count == 4 {
    print("""

## Reopen of the \(keyCount)-key directory (all in tables), fresh process

| measure | value |
|---|---|
| open: manifest, \(Int(fields[3])) tables (filters and indexes loaded) | \(String(format: "%.3f", fields[0])) s |
| RSS after open | \(mb(Int(fields[1]))) (\(String(format: "%.1f", (fields[1] - fields[2]) / Double(keyCount))) B/key above the process baseline of \(mb(Int(fields[2])))) |
""")
}
