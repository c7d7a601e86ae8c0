import Foundation
import Testing
@testable import IdemEngine

/// The reference the engine is checked against: a dictionary of live
/// values with expiry times, evaluated at the injected clock.
struct ReferenceModel {
    var entries: [[UInt8]: (value: [UInt8], expiresAt: Int64?)] = [:]

    func get(_ key: [UInt8], now: Int64) -> [UInt8]? {
        guard let entry = entries[key] else { return nil }
        if let expiresAt = entry.expiresAt, expiresAt <= now { return nil }
        return entry.value
    }

    func scan(prefix: [UInt8], now: Int64) -> [[UInt8]] {
        entries.keys.filter { $0.starts(with: prefix) && get($0, now: now) != nil }
            .sorted { $0.lexicographicallyPrecedes($1) }
    }

    mutating func apply(_ operation: WriteBatch.Operation) {
        switch operation.kind {
        case .value: entries[operation.key] = (operation.value, operation.expiresAt)
        case .tombstone: entries[operation.key] = nil
        }
    }
}

/// Random operations against the engine and the reference model, with
/// clock moves, flushes, maintenance, reopens and simulated power losses.
@Suite struct ModelTests {
    static let hour: Int64 = 3_600_000

    static func options(_ store: SimulatedStore) -> EngineOptions {
        var options = store.lsmOptions(.always, memtableSize: 6 << 10)
        options.compactionTrigger = 3
        options.coldAfter = 5 * hour
        options.hotBlockSize = 512
        options.coldBlockSize = 2048
        return options
    }

    static func verifyAll(_ engine: Engine, _ model: ReferenceModel, keys: [[UInt8]], now: Int64, context: String) throws {
        for key in keys {
            let actual = try engine.get(key)?.value
            #expect(actual == model.get(key, now: now), "\(context) key \(String(decoding: key, as: UTF8.self))")
        }
        #expect(try engine.scan().map(\.key) == model.scan(prefix: [], now: now), "\(context) full scan")
    }

    /// Seeds that once failed, kept as regressions; `IDEM_TEST_SEED` adds
    /// a random one (CI runs fixed seeds so that a red run is reproducible).
    static let regressionSeeds: [UInt64] = [
        12552996565750764265,
        // A newer version, expired by its flush, was dropped and the older
        // one in the same partition came back.
        1691213560853754319,
    ]

    @Test(arguments: regressionSeeds) func engineMatchesTheReferenceModel(seed: UInt64) async throws {
        try await Self.runModel(seed: seed)
    }

    static let environmentSeed = ProcessInfo.processInfo.environment["IDEM_TEST_SEED"].flatMap(UInt64.init)

    @Test(.enabled(if: environmentSeed != nil, "IDEM_TEST_SEED is set"))
    func engineMatchesTheReferenceModelWithTheSeedFromTheEnvironment() async throws {
        try await Self.runModel(seed: Self.environmentSeed!)
    }

    static func runModel(seed: UInt64) async throws {
        print("model test seed \(seed)")
        var generator = SplitMix64(seed: seed)
        var store = SimulatedStore()
        let options = Self.options(store)
        var engine = try store.openLSM(options)
        var model = ReferenceModel()
        let keys = (0..<150).map { bytes("t\($0 % 3):\($0)") }
        var counts: [String: Int] = [:]

        func randomOperation() -> WriteBatch.Operation {
            let key = keys.randomElement(using: &generator)!
            if Int.random(in: 0..<5, using: &generator) == 0 {
                return .init(kind: .tombstone, key: key, value: [], expiresAt: nil)
            }
            let now = store.clock.nowMilliseconds()
            let expiresAt: Int64? = Bool.random(using: &generator) && Int.random(in: 0..<4, using: &generator) == 0
                ? nil : now + Int64.random(in: 60_000...(30 * Self.hour), using: &generator)
            let value = (0..<Int.random(in: 0...120, using: &generator)).map { _ in UInt8.random(in: 97...122, using: &generator) }
            return .init(kind: .value, key: key, value: value, expiresAt: expiresAt)
        }

        for step in 0..<2500 {
            let now = store.clock.nowMilliseconds()
            let context = "seed \(seed) step \(step)"
            let choice = Int.random(in: 0..<100, using: &generator)
            switch choice {
            case 0..<40:
                let operation = randomOperation()
                var batch = WriteBatch()
                batch.append(operation)
                try await engine.write(batch)
                model.apply(operation)
                counts["put/delete", default: 0] += 1
            case 40..<48:
                var batch = WriteBatch()
                for _ in 0..<Int.random(in: 1...4, using: &generator) { batch.append(randomOperation()) }
                try await engine.write(batch)
                for operation in batch.operations { model.apply(operation) }
                counts["batch", default: 0] += 1
            case 48..<56:
                // Read-modify-write: append a byte to the live value, or create.
                let key = keys.randomElement(using: &generator)!
                let expiresAt = now + Int64.random(in: 60_000...(10 * Self.hour), using: &generator)
                let seen = try await engine.update(key) { current in
                    (.put(value: (current?.value ?? []) + [0x2B], expiresAt: expiresAt), current?.value)
                }
                #expect(seen == model.get(key, now: now), "\(context)")
                model.entries[key] = ((model.get(key, now: now) ?? []) + [0x2B], expiresAt)
                counts["update", default: 0] += 1
            case 56..<76:
                let key = keys.randomElement(using: &generator)!
                #expect(try engine.get(key)?.value == model.get(key, now: now), "\(context)")
                counts["get", default: 0] += 1
            case 76..<80:
                let prefix = bytes("t\(Int.random(in: 0..<3, using: &generator)):")
                let limit = Int.random(in: 1...60, using: &generator)
                let expected = Array(model.scan(prefix: prefix, now: now).prefix(limit))
                #expect(try engine.scan(prefix: prefix, limit: limit).map(\.key) == expected, "\(context)")
                counts["scan", default: 0] += 1
            case 80..<86:
                store.clock.advance(byMilliseconds: Int64.random(in: 0...(3 * Self.hour), using: &generator))
                counts["clock", default: 0] += 1
            case 86..<90:
                try await engine.flush()
                counts["flush", default: 0] += 1
            case 90..<95:
                try engine.runMaintenance()
                counts["maintenance", default: 0] += 1
            case 95..<98:
                try engine.close()
                engine = try store.openLSM(options)
                counts["reopen", default: 0] += 1
            default:
                // Power loss: every acknowledged write (fsync=always) survives.
                let crashed = store.crashed(Bool.random(using: &generator) ? .dropUnsynced : .garbleUnsynced(seed: generator.next()))
                try engine.close()
                store = crashed
                engine = try store.openLSM(options)
                counts["crash", default: 0] += 1
            }
            if step % 250 == 249 {
                try Self.verifyAll(engine, model, keys: keys, now: store.clock.nowMilliseconds(), context: context)
            }
        }
        try Self.verifyAll(engine, model, keys: keys, now: store.clock.nowMilliseconds(), context: "seed \(seed) end")
        print("model test steps: \(counts.sorted { $0.key < $1.key })")
        print("maintenance: \(engine.statistics.maintenance)")
        try engine.close()
    }

    /// Power loss at every durability step of a flush, partition drop and
    /// compaction: each state reopens to exactly the acknowledged data, and
    /// leftover files are cleaned away.
    @Test func crashAtEveryStepOfMaintenanceRecoversTheSameState() async throws {
        let seed = testSeed()
        print("maintenance crash test seed \(seed)")
        var generator = SplitMix64(seed: seed)
        let store = SimulatedStore()
        var options = Self.options(store)
        options.memtableSize = 1 << 20
        let engine = try store.openLSM(options)
        var model = ReferenceModel()
        let keys = (0..<300).map { bytes("k\($0)") }
        let start = store.clock.nowMilliseconds()
        // Two flushed rounds in four partitions, a third sealed but not yet
        // flushed (its flush brings partitions to the compaction trigger), a
        // fourth (with deletions) still in the active memtable.
        for round in 0..<4 {
            for key in keys where Int.random(in: 0..<3, using: &generator) > 0 {
                let expiresAt = start + Int64.random(in: 1...4, using: &generator) * Self.hour - 1
                let operation = WriteBatch.Operation(kind: round == 3 && key.count % 2 == 0 ? .tombstone : .value,
                                                     key: key, value: bytes("r\(round)"), expiresAt: expiresAt)
                var batch = WriteBatch()
                batch.append(operation)
                try await engine.write(batch)
                model.apply(operation)
            }
            if round < 2 { try await engine.flush() }
            if round == 2 { try engine.pipeline.sealNow() }
        }
        // The first partition ends: the recorded run also drops it.
        store.clock.advance(byMilliseconds: 2 * Self.hour)
        let now = store.clock.nowMilliseconds()
        let states = try store.fileSystem.crashStates {
            let report = try engine.runMaintenance()
            #expect(report.flushes == 1 && report.partitionsDropped >= 1 && report.compactions >= 1, "\(report)")
        }
        try engine.close()
        #expect(states.count > 1)

        for (index, fileSystem) in states.enumerated() {
            var crashed = store
            crashed.fileSystem = fileSystem
            let reopened = try crashed.openLSM(options)
            try Self.verifyAll(reopened, model, keys: keys, now: now,
                               context: "crash state \(index) of \(states.count)")
            let live = Set(reopened.partitions.flatMap(\.tables).map(\.path))
            let onDisk = Set(try crashed.tableFiles())
            #expect(onDisk == live, "no orphan tables in crash state \(index): \(onDisk.symmetricDifference(live))")
            #expect(try crashed.fileSystem.listDirectory("/db").allSatisfy { !$0.hasSuffix(".tmp") })
            try reopened.close()
        }
    }
}
