import Foundation
import Synchronization
import Testing
@testable import IdemEngine

/// Which tables a merge takes (`CompactionPicker`), and what the engine
/// does with the choice: a large old table stays put while fresh flushes
/// merge, and a merge lets waiting flushes in.
@Suite struct CompactionPickerTests {
    static let hour: Int64 = 3_600_000
    let picker = CompactionPicker(width: 4, sizeRatio: 1.0)

    @Test func fewerTablesThanTheWidthAreLeftAlone() {
        #expect(picker.pick(sizesNewestFirst: []) == nil)
        #expect(picker.pick(sizesNewestFirst: [10, 10, 10]) == nil)
    }

    @Test func equalFreshTablesMergeTogether() {
        #expect(picker.pick(sizesNewestFirst: [10, 9, 11, 10]) == 0..<4)
        // The run takes an older table while it is at most twice the run so far.
        #expect(picker.pick(sizesNewestFirst: [10, 10, 10, 10, 80]) == 0..<5)
    }

    @Test func aLargeOldTableWaitsUntilTheNewerDataMatchesIt() {
        // 40 bytes of fresh tables do not pull in a 1000-byte table...
        #expect(picker.pick(sizesNewestFirst: [10, 10, 10, 10, 1000]) == 0..<4)
        // ...and with too few fresh ones nothing merges at all.
        #expect(picker.pick(sizesNewestFirst: [10, 10, 10, 1000]) == nil)
        #expect(picker.pick(sizesNewestFirst: [400, 300, 200, 100, 1000]) == 0..<5)
    }

    @Test func aRunMayStartPastTheNewestTable() {
        // The newest table is much smaller than the next: the run starts there.
        #expect(picker.pick(sizesNewestFirst: [1, 50, 50, 50, 50]) == 1..<5)
    }

    @Test func tooManyTablesMergeTheNewestWhateverTheSizes() {
        let geometric: [UInt64] = (0..<15).map { 1 << (3 * $0) }
        #expect(picker.pick(sizesNewestFirst: geometric) == nil, "15 tables, each 8x the next newer: no run")
        #expect(picker.pick(sizesNewestFirst: [1] + geometric) == 0..<4, "at 16 tables the newest 4 merge")
    }

    @Test func theWidthIsAtLeastTwoAndTheRatioNeverNegative() {
        let single = CompactionPicker(width: 1, sizeRatio: -3)
        #expect(single.width == 2 && single.sizeRatio == 0)
        #expect(single.pick(sizesNewestFirst: [7]) == nil, "a table is never merged alone")
        #expect(single.pick(sizesNewestFirst: [7, 7]) == 0..<2)
        #expect(single.pick(sizesNewestFirst: [7, 8]) == nil)
        #expect(CompactionPicker(width: 4, sizeRatio: .nan).sizeRatio == 0)
    }

    /// Write amplification of the rule over many flushes into one
    /// partition: what the picker exists for. Merging everything at the
    /// trigger rewrote ~84 bytes per byte flushed over 500 flushes.
    @Test func writeAmplificationStaysLogarithmic() {
        var generator = SplitMix64(seed: 7)
        var tables: [UInt64] = []
        var flushed: UInt64 = 0
        var written: UInt64 = 0
        var most = 0
        for _ in 0..<500 {
            let size = 800 + generator.next() % 200
            tables.insert(size, at: 0)
            flushed += size
            written += size
            while let run = picker.pick(sizesNewestFirst: tables) {
                let merged = tables[run].reduce(0, +)
                written += merged
                tables.replaceSubrange(run, with: [merged])
            }
            most = max(most, tables.count)
        }
        #expect(Double(written) / Double(flushed) < 8)
        #expect(most < picker.maxTables)
    }

    @Test func aLargeTableIsNotRewrittenByEachMerge() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions()
        options.compactionTrigger = 3
        let engine = try store.openLSM(options)
        let expiry = store.clock.nowMilliseconds() + Self.hour
        for index in 0..<3000 { try await engine.put(bytes("big-\(index)"), bytes("old \(index)"), expiresAt: expiry) }
        try await engine.flush()
        let big = try #require(engine.partitions.first?.tables.first)
        for round in 0..<3 {
            for index in 0..<100 {
                try await engine.put(bytes("small-\(round)-\(index)"), bytes("v"), expiresAt: expiry)
            }
            try await engine.put(bytes("big-\(round)"), bytes("new \(round)"), expiresAt: expiry)
            try await engine.flush()
        }
        // Three small tables merged; the large one was left as it was.
        let tables = try #require(engine.partitions.first?.tables)
        #expect(engine.statistics.maintenance.compactions == 1)
        #expect(tables.count == 2)
        #expect(tables.contains { $0.number == big.number && $0.entries == 3000 })
        for round in 0..<3 {
            #expect(try engine.get(bytes("big-\(round)"))?.value == bytes("new \(round)"), "newer versions shadow the large table")
            #expect(try engine.get(bytes("small-\(round)-99"))?.value == bytes("v"))
        }
        #expect(try engine.get(bytes("big-2999"))?.value == bytes("old 2999"))
        try engine.close()
    }

    /// Merges run on the maintenance thread at SCHED_IDLE, which a busy
    /// machine starves; a partition whose tables piled up to twice the
    /// trigger has merges behind, and they catch up at nice 10.
    @Test(.enabled(if: ThreadPriority.idleIsRevocable, "the process may raise a thread out of SCHED_IDLE"),
          arguments: [(tables: 3, raised: false), (tables: 4, raised: true)])
    func mergesThatFellBehindRunRaised(tables: Int, raised: Bool) async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions()
        options.compactionTrigger = 100
        let engine = try store.openLSM(options)
        let expiry = store.clock.nowMilliseconds() + Self.hour
        for round in 0..<tables {
            // More keys than a merge's pause interval (4096) in all.
            for index in 0..<1500 { try await engine.put(bytes("k\(round)-\(index)"), bytes("v"), expiresAt: expiry) }
            try await engine.flush()
        }
        #expect(engine.statistics.tables == tables && engine.statistics.maintenance.compactions == 0)
        try engine.close()

        options.compactionTrigger = 2
        let seen = Mutex<[Bool]>([])
        let target = Mutex<Engine?>(nil)
        options.onCompactionPause = {
            if let engine = target.withLock({ $0 }) { seen.withLock { $0.append(engine.maintenance.priority.isBoosted) } }
        }
        let reopened = try store.openLSM(options)
        target.withLock { $0 = reopened }
        try reopened.runMaintenance()
        target.withLock { $0 = nil }
        #expect(reopened.statistics.maintenance.compactions >= 1)
        let pauses = seen.withLock { $0 }
        #expect(!pauses.isEmpty && pauses.allSatisfy { $0 == raised }, "\(pauses)")
        #expect(!reopened.maintenance.priority.isBoosted, "back at rest once the merges are done")
        #expect(reopened.statistics.maintenanceBoosts == (raised ? 1 : 0))
        try reopened.close()
    }

    /// Three tables of `keysPerTable` keys flushed into one partition with
    /// a trigger of 3, so the third flush merges them; `onPause` runs at
    /// each of the merge's pauses (every 4096 keys), on the maintenance
    /// thread. Keys are `k<round>-<index>` with values `v<round>`.
    private func mergeThreeTables(keysPerTable: Int,
                                  onPause: @escaping @Sendable (Engine) -> Void) async throws -> (SimulatedStore, Engine) {
        let store = SimulatedStore()
        var options = store.lsmOptions()
        options.compactionTrigger = 3
        let target = Mutex<Engine?>(nil)
        options.onCompactionPause = {
            if let engine = target.withLock({ $0 }) { onPause(engine) }
        }
        let engine = try store.openLSM(options)
        target.withLock { $0 = engine }
        let expiry = store.clock.nowMilliseconds() + Self.hour
        for round in 0..<3 {
            for index in 0..<keysPerTable {
                try await engine.put(bytes("k\(round)-\(index)"), bytes("v\(round)"), expiresAt: expiry)
            }
            try await engine.flush()
        }
        target.withLock { $0 = nil }
        return (store, engine)
    }

    @Test func aMergeLetsWaitingFlushesIn() async throws {
        let sealedDuringMerge = Mutex(false)
        let (store, engine) = try await mergeThreeTables(keysPerTable: 2000) { engine in
            guard !sealedDuringMerge.withLock({ $0 }) else { return }
            sealedDuringMerge.withLock { $0 = true }
            var batch = WriteBatch()
            batch.put(bytes("written-during-merge"), bytes("late"), expiresAt: nil)
            engine.write(batch) { _ in }
            try? engine.pipeline.sealNow()
        }
        #expect(sealedDuringMerge.withLock { $0 })
        #expect(engine.statistics.maintenance.compactions == 1)
        #expect(engine.statistics.sealedMemtables == 0, "the memtable sealed mid-merge was flushed by the merge's pause")
        #expect(engine.statistics.maintenance.flushes == 4)
        #expect(try engine.get(bytes("written-during-merge"))?.value == bytes("late"))
        #expect(try engine.get(bytes("k0-1999"))?.value == bytes("v0"))
        try engine.close()
        let reopened = try store.openLSM(store.lsmOptions())
        #expect(try reopened.get(bytes("written-during-merge"))?.value == bytes("late"))
        #expect(try reopened.get(bytes("k2-0"))?.value == bytes("v2"))
        #expect(reopened.partitions.flatMap(\.tables).count == 2, "the merged table and the one flushed during the merge")
        try reopened.close()
    }

    @Test func aFlushInAMergesPauseIsTimedAsAFlush() async throws {
        let seenAtPauses = Mutex<[MaintenanceReport]>([])
        let (_, engine) = try await mergeThreeTables(keysPerTable: 3000) { engine in
            let pauses = seenAtPauses.withLock { seen in
                seen.append(engine.statistics.maintenance)
                return seen.count
            }
            guard pauses == 1 else { return }
            var batch = WriteBatch()
            batch.put(bytes("written-during-merge"), bytes("late"), expiresAt: nil)
            engine.write(batch) { _ in }
            try? engine.pipeline.sealNow()
        }
        let seen = seenAtPauses.withLock { $0 }
        #expect(seen.count == 2, "two pauses in a 9000-key merge")
        guard seen.count == 2 else { return }
        #expect(seen[1].flushes == seen[0].flushes + 1, "the first pause flushed the sealed memtable")
        // Published as each flush ends, whether or not a merge is running
        // (its time used to go to the merge, published at the run's end).
        #expect(seen[1].flushSeconds > seen[0].flushSeconds)
        let totals = engine.statistics.maintenance
        #expect(totals.compactionSeconds >= 0 && totals.flushSeconds >= seen[1].flushSeconds)
        try engine.close()
    }

    @Test func aMergeLeavesTheBlockCacheToPointLookups() async throws {
        // Puts read nothing, so a block cached while the merge runs is one
        // it put there (the inputs' blocks leave the cache with their files
        // when it ends, so only a look from inside shows them).
        let cachedAtPauses = Mutex<[Int]>([])
        let (_, engine) = try await mergeThreeTables(keysPerTable: 3000) { engine in
            let cached = engine.statistics.blockCacheBytes
            cachedAtPauses.withLock { $0.append(cached) }
        }
        #expect(cachedAtPauses.withLock { $0 } == [0, 0], "the merge's reads were not cached")
        #expect(try engine.get(bytes("k1-7"))?.value == bytes("v1"))
        #expect(engine.statistics.blockCacheBytes > 0, "a point lookup's block is")
        try engine.close()
    }

    @Test func statisticsAnswerWhileAMergeRuns() async throws {
        let seen = Mutex<[Bool]>([])
        let (_, engine) = try await mergeThreeTables(keysPerTable: 3000) { engine in
            // From another thread, as INFO would: it must not wait for the merge.
            let answered = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                let compacting = engine.statistics.compacting
                seen.withLock { $0.append(compacting) }
                answered.signal()
            }
            if answered.wait(timeout: .now() + 10) == .timedOut { seen.withLock { $0.append(false) } }
        }
        #expect(seen.withLock { $0 } == [true, true], "two pauses in a 9000-key merge, each saw it running")
        #expect(engine.statistics.compacting == false)
        #expect(engine.statistics.maintenance.compactions == 1)
        try engine.close()
    }
}
