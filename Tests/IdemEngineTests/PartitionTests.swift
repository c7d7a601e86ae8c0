import Testing
@testable import IdemEngine

/// Flushes, time partitions, whole-partition expiry, compaction and tiers.
@Suite struct PartitionTests {
    static let hour: Int64 = 3_600_000

    @Test func flushedDataIsReadFromTablesAndSurvivesReopen() async throws {
        let store = SimulatedStore()
        let options = store.lsmOptions()
        let engine = try store.openLSM(options)
        let now = store.clock.nowMilliseconds()
        for index in 0..<2000 {
            try await engine.put(bytes("order:\(index)"), bytes("response \(index)"),
                                 expiresAt: index % 4 == 0 ? nil : now + Int64(index % 3 + 1) * Self.hour)
        }
        try await engine.flush()
        let stats = engine.statistics
        #expect(stats.memtableEntries == 0)
        #expect(stats.tables == 4, "one table per partition: 1h, 2h, 3h and persistent")
        // A partition is named by its end: expiry rounded up to the hour.
        let base = now / Self.hour * Self.hour
        #expect(engine.partitions.map(\.end) == [base + 2 * Self.hour, base + 3 * Self.hour, base + 4 * Self.hour, nil])
        for index in 0..<2000 { #expect(try engine.get(bytes("order:\(index)"))?.value == bytes("response \(index)")) }
        #expect(try engine.get(bytes("order:x")) == nil)
        #expect(try engine.scan(prefix: bytes("order:1")).count == 1111)
        #expect(try store.segmentPaths().count == 1, "WAL segments covered by the flush are deleted")
        try engine.close()

        let reopened = try store.openLSM(options)
        #expect(reopened.recoveryReport.tablesOpened == 4)
        #expect(reopened.recoveryReport.entriesReplayed == 0)
        for index in stride(from: 0, to: 2000, by: 7) {
            #expect(try reopened.get(bytes("order:\(index)"))?.value == bytes("response \(index)"))
        }
        try await reopened.put("later", "x")
        #expect(try reopened.get("later")?.sequence == 2001, "sequence numbers continue past flushed data")
        try reopened.close()
    }

    @Test func cachedReadsNeverTouchTheDiskAndSayWhenTheyWould() async throws {
        let store = SimulatedStore()
        let options = store.lsmOptions()
        let engine = try store.openLSM(options)
        for index in 0..<500 { try await engine.put(bytes("k\(index)"), bytes("v\(index)")) }
        try await engine.put(bytes("fresh"), bytes("in memory"))
        try await engine.flush()
        try await engine.put(bytes("newer"), bytes("memtable"))
        try engine.close()

        let reopened = try store.openLSM(options) // an empty block cache
        #expect(try reopened.get(ifCached: bytes("newer")) == .value(try reopened.get(bytes("newer"))))
        #expect(try reopened.get(ifCached: bytes("k7")) == .needsDiskRead)
        #expect(try reopened.get(ifCached: bytes("absent-key")) == .value(nil), "the bloom filter answers without a read")
        let value = try reopened.get(bytes("k7"))
        #expect(value?.value == bytes("v7"))
        #expect(try reopened.get(ifCached: bytes("k7")) == .value(value), "the block is cached now")
        try reopened.close()
    }

    @Test func aScanUsesTheBlockCacheButLeavesItToPointLookups() async throws {
        let store = SimulatedStore()
        let options = store.lsmOptions()
        let engine = try store.openLSM(options)
        for index in 0..<2000 { try await engine.put(bytes("k\(index)"), bytes("v\(index)")) }
        try await engine.flush()
        try engine.close()

        let reopened = try store.openLSM(options) // an empty block cache
        #expect(try reopened.scan().count == 2000)
        #expect(reopened.statistics.blockCacheBytes == 0, "the scan's blocks were not cached")
        #expect(try reopened.get(bytes("k7"))?.value == bytes("v7"))
        let cached = reopened.statistics.blockCacheBytes
        #expect(cached > 0)
        let hits = reopened.statistics.blockCacheHits
        #expect(try reopened.scan(prefix: bytes("k7"), limit: 1).map(\.key) == [bytes("k7")])
        #expect(reopened.statistics.blockCacheHits > hits, "a cached block serves the scan")
        #expect(reopened.statistics.blockCacheBytes == cached)
        try reopened.close()
    }

    @Test func endedPartitionsAreDeletedWholeAndTheirSpaceReturned() async throws {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions())
        let now = store.clock.nowMilliseconds()
        for index in 0..<3000 {
            try await engine.put(bytes("k\(index)"), bytes("v"), expiresAt: now + (index % 2 == 0 ? 1 : 5) * Self.hour)
        }
        try await engine.flush()
        let before = try store.tableFiles()
        #expect(before.count == 2)
        store.clock.advance(byMilliseconds: 2 * Self.hour)
        let report = try engine.runMaintenance()
        #expect(report.partitionsDropped == 1 && report.filesDropped == 1)
        let after = try store.tableFiles()
        #expect(after.count == 1)
        #expect(!store.fileSystem.fileExists(Set(before).subtracting(after).first!), "the file is gone")
        for index in 0..<3000 {
            #expect(try engine.get(bytes("k\(index)")) == (index % 2 == 0 ? nil : try engine.get(bytes("k\(index)"))))
        }
        #expect(try engine.scan().count == 1500)
        store.clock.advance(byMilliseconds: 4 * Self.hour)
        try engine.runMaintenance()
        #expect(try store.tableFiles().isEmpty)
        #expect(engine.statistics.tableBytes == 0)
        try engine.close()
    }

    @Test func aShorterTTLNeverResurrectsAnOlderLongerLivedVersion() async throws {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions())
        let now = store.clock.nowMilliseconds()
        try await engine.put("key", "old, lives 10 h", expiresAt: now + 10 * Self.hour)
        try await engine.flush()
        try await engine.put("key", "new, lives 1 h", expiresAt: now + Self.hour)
        try await engine.flush()
        // The new version sits with the old one (10 h partition), not in the 1 h one.
        #expect(engine.partitions.count == 1)
        store.clock.advance(byMilliseconds: 2 * Self.hour)
        try engine.runMaintenance()
        #expect(try engine.get("key") == nil, "the newest version expired; the old must stay hidden")
        store.clock.advance(byMilliseconds: 9 * Self.hour)
        try engine.runMaintenance()
        #expect(try store.tableFiles().isEmpty)
        try engine.close()
    }

    @Test func aVersionExpiredBeforeItsFlushStillHidesAnOlderOneInItsPartition() async throws {
        // Found by the model test (seed 1691213560853754319): the flush
        // dropped the expired newer version because it looked for older
        // ones only in *later* partitions, and the older one, in the same
        // partition but expiring later, came back.
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions())
        let partitionStart = (store.clock.nowMilliseconds() / Self.hour + 1) * Self.hour
        store.clock.set(milliseconds: partitionStart + 60_000)
        try await engine.put("key", "old, lives to minute 50", expiresAt: partitionStart + 50 * 60_000)
        try await engine.flush()
        try await engine.put("key", "new, lives to minute 10", expiresAt: partitionStart + 10 * 60_000)
        store.clock.set(milliseconds: partitionStart + 20 * 60_000)
        #expect(try engine.get("key") == nil)
        try await engine.flush()
        #expect(try engine.get("key") == nil, "the newer version expired, and it still shadows the older")
        try engine.close()
        let reopened = try store.openLSM(store.lsmOptions())
        #expect(try reopened.get("key") == nil)
        store.clock.set(milliseconds: partitionStart + Self.hour)
        try reopened.runMaintenance()
        #expect(try store.tableFiles().isEmpty, "both go with their partition")
        try reopened.close()
    }

    @Test func deletedKeysNeverResurrect() async throws {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions())
        let now = store.clock.nowMilliseconds()
        try await engine.put("forever", "v")
        try await engine.put("long", "v", expiresAt: now + 10 * Self.hour)
        try await engine.put("never-flushed", "v", expiresAt: now + Self.hour)
        try await engine.flush()
        try await engine.delete("forever")
        try await engine.delete("long")
        try await engine.put("short-lived", "v", expiresAt: now + Self.hour)
        try await engine.delete("short-lived") // in the same memtable: the tombstone has nothing to shadow on disk
        try await engine.flush()
        for hours in [0, 2, 11, 1000] as [Int64] {
            store.clock.set(milliseconds: now + hours * Self.hour)
            try engine.runMaintenance()
            #expect(try engine.get("forever") == nil && engine.get("long") == nil && engine.get("short-lived") == nil,
                    "at +\(hours) h")
        }
        try engine.close()
        let reopened = try store.openLSM(store.lsmOptions())
        #expect(try reopened.get("forever") == nil)
        try reopened.close()
    }

    @Test func compactionMergesAPartitionAndDropsShadowedVersions() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions()
        options.compactionTrigger = 3
        let engine = try store.openLSM(options)
        let now = store.clock.nowMilliseconds()
        for round in 0..<3 {
            for index in 0..<500 {
                try await engine.put(bytes("k\(index)"), bytes("round \(round)"), expiresAt: now + Self.hour)
            }
            try await engine.flush()
        }
        // The third flush brought the partition to the trigger: merged.
        let tables = engine.partitions.flatMap(\.tables)
        #expect(tables.count == 1)
        #expect(tables.first?.entries == 500, "older versions were dropped")
        #expect(engine.statistics.maintenance.compactions == 1)
        for index in 0..<500 { #expect(try engine.get(bytes("k\(index)"))?.value == bytes("round 2")) }
        try engine.close()
    }

    @Test func agedTablesMoveToTheColdTierWithZstd() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions()
        options.coldAfter = 2 * Self.hour
        let engine = try store.openLSM(options)
        let now = store.clock.nowMilliseconds()
        let body = String(repeating: "{\"status\":\"succeeded\",\"amount\":1999,\"currency\":\"eur\"}", count: 4)
        for index in 0..<1000 {
            try await engine.put(bytes("tenant-1:\(index)"), bytes(body), expiresAt: now + 24 * Self.hour)
        }
        try await engine.flush()
        let hot = engine.partitions.flatMap(\.tables)
        #expect(hot.map(\.tier) == [.hot])
        store.clock.advance(byMilliseconds: 3 * Self.hour)
        let report = try engine.runMaintenance()
        #expect(report.coldMigrations == 1)
        let cold = engine.partitions.flatMap(\.tables)
        #expect(cold.map(\.tier) == [.cold])
        #expect(cold.first!.path.hasPrefix("/db/cold/"))
        #expect(cold.first!.bytes < hot.first!.bytes, "zstd with larger blocks beats lz4")
        for index in stride(from: 0, to: 1000, by: 13) {
            #expect(try engine.get(bytes("tenant-1:\(index)"))?.value == bytes(body))
        }
        try engine.close()
        let reopened = try store.openLSM(options)
        #expect(try reopened.get(bytes("tenant-1:7"))?.value == bytes(body))
        try reopened.close()
    }

    @Test func corruptedTableBlockFailsOnlyTheReadsThatNeedIt() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions()
        options.blockCacheSize = 0
        let engine = try store.openLSM(options)
        for index in 0..<2000 { try await engine.put(bytes(String(format: "k%05d", index)), [UInt8](repeating: 7, count: 50)) }
        try await engine.flush()
        let path = try store.tableFiles().first!
        store.fileSystem.corrupt(path, at: 100)
        do {
            _ = try engine.get(bytes("k00000"))
            Issue.record("a corrupt block must not be served")
        } catch {
            guard case .corruption(let file, _, _) = error else { Issue.record("\(error)"); return }
            #expect(file == path)
        }
        #expect(try engine.get(bytes("k01999"))?.value.count == 50, "other blocks still serve")
        try engine.close()
    }

    @Test func writersStallWhileFlushesLagAndResumeAfter() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions(.never, memtableSize: 4096)
        options.maxSealedMemtables = 2
        options.backgroundMaintenance = true
        options.maintenanceInterval = 5
        let engine = try store.openLSM(options)
        for index in 0..<3000 { try await engine.put(bytes("key-\(index)"), [UInt8](repeating: 1, count: 40)) }
        let stats = engine.statistics
        #expect(stats.maintenance.flushes > 10)
        #expect(stats.sealedMemtables <= 2)
        for index in stride(from: 0, to: 3000, by: 11) { #expect(try engine.get(bytes("key-\(index)")) != nil) }
        try engine.close()
        let reopened = try store.openLSM(options)
        #expect(try reopened.scan(prefix: bytes("key-")).count == 3000)
        try reopened.close()
    }
}
