import Benchmark
@_spi(Benchmarks) import IdemEngine
import Foundation

// Workloads from the engine-core issue: 1M random 16-byte keys, 64-byte
// values, one thread unless stated. Each measured iteration runs
// `scaledIterations` operations, so results read per operation.

let keyCount = 1_000_000

func randomKeys(_ count: Int, seed: UInt64) -> [[UInt8]] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) } }
}

let keys = randomKeys(keyCount, seed: 1)
let missingKeys = randomKeys(keyCount, seed: 2)
let value = [UInt8](repeating: 0x61, count: 64)

func scratchDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "idem-bench-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

/// An engine whose memtable holds the whole 1M-key set (1 GiB limit), so
/// these benchmarks measure the memtable path; the table path is measured
/// by `idem-workloads`.
func openEngine(_ name: String, _ durability: Durability) throws -> Engine {
    var options = EngineOptions(durability: durability)
    options.memtableSize = 1 << 30
    return try Engine.open(directory: scratchDirectory(name), options: options)
}

func destroy(_ engine: Engine) throws {
    try engine.close()
    try FileManager.default.removeItem(atPath: engine.directory)
}

nonisolated(unsafe) var benchmarks: @Sendable () -> Void = {
    let million = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        warmupIterations: 0, scalingFactor: .mega, maxDuration: .seconds(20), maxIterations: 3)

    // MARK: ART vs Dictionary

    Benchmark("ART insert (1M random 16 B keys)", configuration: million) { benchmark in
        var tree = RadixTreeWorkload(keys: keys)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations { tree.insert(index) }
        benchmark.stopMeasurement()
        blackHole(tree.count)
    }

    Benchmark("Dictionary insert (1M random 16 B keys)", configuration: million) { benchmark in
        var dictionary: [[UInt8]: Int] = [:]
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations { dictionary[keys[index]] = index }
        benchmark.stopMeasurement()
        blackHole(dictionary.count)
    }

    Benchmark("ART lookup hit (1M keys)", configuration: million) { benchmark in
        var tree = RadixTreeWorkload(keys: keys)
        tree.insertAll()
        benchmark.startMeasurement()
        var found = 0
        for index in benchmark.scaledIterations where tree.contains(keys[index]) { found += 1 }
        benchmark.stopMeasurement()
        precondition(found == keyCount)
    }

    Benchmark("Dictionary lookup hit (1M keys)", configuration: million) { benchmark in
        var dictionary: [[UInt8]: Int] = [:]
        for (index, key) in keys.enumerated() { dictionary[key] = index }
        benchmark.startMeasurement()
        var found = 0
        for index in benchmark.scaledIterations where dictionary[keys[index]] != nil { found += 1 }
        benchmark.stopMeasurement()
        precondition(found == keyCount)
    }

    Benchmark("ART lookup miss (1M keys)", configuration: million) { benchmark in
        var tree = RadixTreeWorkload(keys: keys)
        tree.insertAll()
        benchmark.startMeasurement()
        var found = 0
        for index in benchmark.scaledIterations where tree.contains(missingKeys[index]) { found += 1 }
        benchmark.stopMeasurement()
        blackHole(found)
    }

    // MARK: Engine

    Benchmark("Engine put, fsync=never (1M keys, 64 B values)", configuration: million) { benchmark in
        let engine = try openEngine("put", .never)
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations { try await engine.put(keys[index], value) }
        benchmark.stopMeasurement()
        try destroy(engine)
    }

    for (label, probes) in [("hit", keys), ("miss", missingKeys)] {
        Benchmark("Engine get \(label) (1M keys, memtable)", configuration: million) { benchmark in
            let engine = try openEngine("get-\(label)", .never)
            for key in keys { try await engine.put(key, value) }
            benchmark.startMeasurement()
            var found = 0
            for index in benchmark.scaledIterations where try engine.get(probes[index]) != nil { found += 1 }
            benchmark.stopMeasurement()
            precondition(label == "miss" || found == keyCount)
            try destroy(engine)
        }
    }

    Benchmark("Engine recovery (1M records, 16 B keys, 64 B values)",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident], warmupIterations: 0,
                                   maxDuration: .seconds(30), maxIterations: 3)) { benchmark in
        let directory = scratchDirectory("recovery")
        let writer = try Engine.open(directory: directory, options: EngineOptions(durability: .never))
        for key in keys { try await writer.put(key, value) }
        try writer.close()
        benchmark.startMeasurement()
        let engine = try Engine.open(directory: directory, options: EngineOptions(durability: .never))
        benchmark.stopMeasurement()
        precondition(engine.recoveryReport.entriesReplayed == keyCount)
        try destroy(engine)
    }

    // MARK: Group commit under fsync=always

    for writers in [1, 8, 64] {
        let writes = writers == 1 ? 2_000 : 20_000
        Benchmark("Group commit, fsync=always, \(writers) writers (\(writes) puts)",
                  configuration: .init(metrics: [.wallClock, .throughput,
                                                 .custom("syncs/s", polarity: .prefersSmaller, useScalingFactor: false),
                                                 .custom("puts/s", polarity: .prefersLarger, useScalingFactor: false)],
                                       warmupIterations: 0, maxDuration: .seconds(20), maxIterations: 3)) { benchmark in
            let engine = try openEngine("group\(writers)", .always)
            let start = ContinuousClock.now
            benchmark.startMeasurement()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        for index in stride(from: writer, to: writes, by: writers) {
                            try await engine.put(keys[index], value)
                        }
                    }
                }
                try await group.waitForAll()
            }
            benchmark.stopMeasurement()
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            let stats = engine.statistics
            benchmark.measurement(.custom("syncs/s", polarity: .prefersSmaller, useScalingFactor: false),
                                  Int(Double(stats.walSyncs) / seconds))
            benchmark.measurement(.custom("puts/s", polarity: .prefersLarger, useScalingFactor: false),
                                  Int(Double(writes) / seconds))
            try destroy(engine)
        }
    }
}
