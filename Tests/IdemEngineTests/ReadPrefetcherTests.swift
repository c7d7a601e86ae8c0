import Testing
@testable import IdemEngine

/// Prefetching is a hint: lookups answer the same with or without it, from
/// every source (memtable, tables with and without the key, several
/// partitions), and the memtable's published slot address follows its
/// index through growth.
@Suite struct ReadPrefetcherTests {
    @Test func lookupsAfterPrefetchesMatchAModel() async throws {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions(memtableSize: 64 * 1024))
        let now = store.clock.nowMilliseconds()
        var model: [[UInt8]: [UInt8]] = [:]
        // Three flushes into three partitions, then writes left in the memtable.
        for round in 0..<4 {
            for index in stride(from: round, to: 3_000, by: 3) {
                let key = bytes("key:\(index)")
                let value = bytes("v\(round)-\(index)")
                try await engine.put(key, value, expiresAt: now + Int64(round + 1) * 3_600_000)
                model[key] = value
            }
            if round < 3 { try await engine.flush() }
        }
        #expect(engine.statistics.tables >= 3)
        let keys = (0..<3_300).map { bytes("key:\($0)") } + [[], bytes("absent")]
        for batch in stride(from: 0, to: keys.count, by: 16) {
            let prefetcher = engine.readPrefetcher()
            let slice = keys[batch..<min(batch + 16, keys.count)]
            for key in slice { key.withUnsafeBytes { prefetcher.prefetch($0) } }
            for key in slice { #expect(try engine.get(key)?.value == model[key], "key \(key)") }
        }
    }

    @Test func theMemtablesPublishedSlotsFollowItsGrowth() {
        let memtable = Memtable()  // the smallest index: grows many times below
        #expect(memtable.probeHintIsCurrent)
        for number in 0..<20_000 {
            memtable.apply(VersionedEntry.make(kind: .value, key: bytes("key:\(number)"), value: [1], expiresAt: 0,
                                               sequence: UInt64(number + 1)))
            MemtableIndex.prefetch(hint: memtable.slotsHint, hash: UInt64(number) &* 0x9E37_79B9_7F4A_7C15)
            if number % 997 == 0 { #expect(memtable.probeHintIsCurrent, "after \(number + 1) entries") }
        }
        #expect(memtable.probeHintIsCurrent)
    }
}
