import Synchronization
import Testing
@testable import IdemEngine

@Suite struct EngineTests {
    @Test(arguments: Durability.allCases)
    func putGetDeleteAcrossReopen(durability: Durability) async throws {
        let store = SimulatedStore()
        let engine = try store.open(durability)
        try await engine.put("a", "1")
        try await engine.put("b", "2", expiresAt: store.clock.nowMilliseconds() + 60_000)
        try await engine.put("a", "3")
        try await engine.delete("b")
        #expect(try engine.get("a")?.value == bytes("3"))
        #expect(try engine.get("b") == nil)
        #expect(try engine.get("missing") == nil)
        try engine.close()

        let reopened = try store.open(durability)
        #expect(try reopened.get("a")?.value == bytes("3"))
        #expect(try reopened.get("b") == nil)
        #expect(reopened.recoveryReport.entriesReplayed == 4)
        #expect(reopened.recoveryReport.lastSequence == 4)
        // Sequence numbers continue where the log left off.
        try await reopened.put("c", "4")
        #expect(try reopened.get("c")?.sequence == 5)
        try reopened.close()
    }

    /// A read's `StoredValue` is a view of the entry it found, from a
    /// memtable or a table alike: every way of reading it agrees.
    @Test func aStoredValueShowsItsEntry() async throws {
        let store = SimulatedStore()
        let engine = try store.open()
        let expiry = store.clock.nowMilliseconds() + 60_000
        try await engine.put("k", "value", expiresAt: expiry)
        try await engine.put("empty", "")
        let fromMemtable = try #require(try engine.get("k"))
        #expect(fromMemtable.value == bytes("value"))
        #expect(fromMemtable.withValue { Array($0) } == bytes("value"))
        #expect(fromMemtable.firstByte == UInt8(ascii: "v"))
        #expect(fromMemtable.expiresAt == expiry && fromMemtable.sequence == 1)
        #expect(try engine.get("empty")?.firstByte == nil)
        #expect(try engine.get("empty")?.expiresAt == nil)

        try await engine.flush()
        #expect(engine.statistics.memtableEntries == 0, "read from a table from here on")
        let fromTable = try #require(try engine.get("k"))
        #expect(fromTable == fromMemtable, "equal: same bytes, expiry and sequence")
        try await engine.put("k", "value", expiresAt: expiry)
        #expect(try engine.get("k") != fromMemtable, "the same bytes written again are another write")
        try engine.close()
    }

    @Test func closedEngineRefusesWrites() async throws {
        let store = SimulatedStore()
        let engine = try store.open()
        try engine.close()
        await #expect(throws: EngineError.closed) { try await engine.put("a", "1") }
        try engine.close() // idempotent
    }

    @Test(arguments: Durability.allCases)
    func aClosedEngineIsFreed(durability: Durability) async throws {
        weak var released: Engine?
        weak var pipeline: CommitPipeline?
        do {
            var options = SimulatedStore().options(durability)
            options.backgroundMaintenance = true
            let engine = try Engine.open(directory: "/db", options: options)
            try await engine.put("k", "v")
            released = engine
            pipeline = engine.pipeline
            try engine.close()
        }
        // Background threads drop their references as they exit.
        for _ in 0..<1000 where released != nil || pipeline != nil { try await Task.sleep(for: .milliseconds(1)) }
        #expect(released == nil && pipeline == nil, "no reference cycle keeps a closed engine's parts alive")
    }

    @Test func secondOpenOfOneDirectoryIsRefused() throws {
        let store = SimulatedStore()
        let engine = try store.open()
        #expect(throws: EngineError.self) { _ = try store.open() }
        try engine.close()
        try store.open().close()
    }

    @Test func limitsHaveNamedErrors() async throws {
        let store = SimulatedStore()
        var options = store.options()
        options.maxKeySize = 8
        options.maxValueSize = 16
        options.maxBatchBytes = 100
        let engine = try Engine.open(directory: store.directory, options: options)
        await #expect(throws: EngineError.emptyKey) { try await engine.put([], [1]) }
        await #expect(throws: EngineError.keyTooLarge(size: 9, limit: 8)) {
            try await engine.put([UInt8](repeating: 1, count: 9), [1])
        }
        await #expect(throws: EngineError.valueTooLarge(size: 17, limit: 16)) {
            try await engine.put([1], [UInt8](repeating: 1, count: 17))
        }
        await #expect(throws: EngineError.invalidExpiry(-5)) { try await engine.put([1], [1], expiresAt: -5) }
        var batch = WriteBatch()
        for index in 0..<10 { batch.put([UInt8(index)], [UInt8](repeating: 2, count: 16)) }
        await #expect(throws: EngineError.batchTooLarge(size: 292, limit: 100)) { try await engine.write(batch) }
        // Nothing of a refused batch was applied, and the engine still works.
        #expect(try engine.get([0]) == nil)
        try await engine.put([1], [2])
        #expect(try engine.get([1])?.value == [2])
        try engine.close()
    }

    @Test func writeBatchIsAtomicAndOrdered() async throws {
        let store = SimulatedStore()
        let engine = try store.open()
        var batch = WriteBatch()
        batch.put(bytes("x"), bytes("1"))
        batch.put(bytes("y"), bytes("2"))
        batch.delete(bytes("x"))
        try await engine.write(batch)
        #expect(try engine.get("x") == nil)
        #expect(try engine.get("y")?.value == bytes("2"))
        try engine.close()
        let reopened = try store.open()
        #expect(try reopened.get("x") == nil)
        #expect(try reopened.get("y")?.sequence == 2)
        #expect(reopened.recoveryReport.recordsReplayed == 1)
        try reopened.close()
    }

    @Test func expiryFollowsTheInjectedClock() async throws {
        let store = SimulatedStore()
        let engine = try store.open()
        let now = store.clock.nowMilliseconds()
        try await engine.put("session", "v", expiresAt: now + 1000)
        try await engine.put("forever", "v")
        #expect(try engine.get("session")?.expiresAt == now + 1000)
        store.clock.advance(byMilliseconds: 999)
        #expect(try engine.get("session") != nil)
        store.clock.advance(byMilliseconds: 1)
        #expect(try engine.get("session") == nil, "expired at exactly expiresAt")
        #expect(try engine.scan().map(\.key) == [bytes("forever")])
        let sawAbsent = try await engine.update(bytes("session")) { current in (nil, current == nil) }
        #expect(sawAbsent)
        try engine.close()
        let reopened = try store.open()
        #expect(try reopened.get("session") == nil)
        store.clock.set(milliseconds: now)
        #expect(try reopened.get("session") != nil, "expiry is evaluated at read time, not dropped at recovery")
        try reopened.close()
    }

    @Test func scanReturnsLiveKeysInOrderWithPaging() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.never)
        for index in 0..<3000 {
            try await engine.put(bytes("k:\(String(index, radix: 16))"), bytes("\(index)"))
        }
        for index in stride(from: 0, to: 3000, by: 2) { try await engine.delete(bytes("k:\(String(index, radix: 16))")) }
        try await engine.put("l:other", "x")
        let all = try engine.scan(prefix: bytes("k:"))
        #expect(all.count == 1500)
        #expect(all.map(\.key) == all.map(\.key).sorted { $0.lexicographicallyPrecedes($1) })
        var paged: [[UInt8]] = []
        var cursor: [UInt8]? = nil
        while true {
            let page = try engine.scan(prefix: bytes("k:"), from: cursor, limit: 100)
            paged += page.map(\.key)
            guard page.count == 100 else { break }
            cursor = page.last!.key + [0]
        }
        #expect(paged == all.map(\.key))
        #expect(try engine.scan(prefix: bytes("l:")).map(\.value.value) == [bytes("x")])
        try engine.close()
    }

    @Test(arguments: Durability.allCases)
    func concurrentUpdatesHaveExactlyOneWinner(durability: Durability) async throws {
        let store = SimulatedStore(fileSystem: SimulatedFileSystem(syncLatencyMicroseconds: 200))
        let engine = try store.open(durability)
        let key = bytes("payment:42")
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for task in 0..<200 {
                group.addTask {
                    try await engine.update(key) { current in
                        guard current == nil else { return (nil, false) }
                        return (.put(value: bytes("owner \(task)"), expiresAt: nil), true)
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
        #expect(try engine.get(key) != nil)
        try engine.close()
    }

    @Test func concurrentIncrementsAreNotLost() async throws {
        let store = SimulatedStore(fileSystem: SimulatedFileSystem(syncLatencyMicroseconds: 100))
        let engine = try store.open(.always)
        let key = bytes("counter")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    try await engine.update(key) { current in
                        let value = current.map { Int(String(decoding: $0.value, as: UTF8.self))! } ?? 0
                        return (.put(value: bytes("\(value + 1)"), expiresAt: nil), ())
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try engine.get(key)?.value == bytes("100"))
        try engine.close()
        #expect(try store.open().get(key)?.value == bytes("100"))
    }

    @Test func groupCommitSharesSyncsBetweenConcurrentWriters() async throws {
        // A 1 ms sync: writers arriving meanwhile must join the next group.
        let store = SimulatedStore(fileSystem: SimulatedFileSystem(syncLatencyMicroseconds: 1000))
        let engine = try store.open(.always)
        let writers = 64, writesEach = 4
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in 0..<writesEach { try await engine.put(bytes("w\(writer):\(index)"), bytes("v")) }
                }
            }
            try await group.waitForAll()
        }
        let stats = engine.statistics
        #expect(stats.writesAcknowledged == writers * writesEach)
        #expect(stats.walRecords == writers * writesEach)
        #expect(stats.walAppends == stats.walSyncs, "one append per group, one sync per group")
        #expect(stats.walSyncs <= writers * writesEach / 4, "syncs \(stats.walSyncs) for \(writers * writesEach) writes")
        try engine.close()
    }

    @Test func callbackWritesCompleteOffTheCallersThread() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.always)
        let result: Result<Void, EngineError> = await withCheckedContinuation { continuation in
            var batch = WriteBatch()
            batch.put(bytes("k"), bytes("v"))
            engine.write(batch) { continuation.resume(returning: $0) }
        }
        #expect((try? result.get()) != nil)
        let outcome: Result<Int, any Error> = await withCheckedContinuation { continuation in
            engine.update(bytes("k"), { current in (.delete, current?.value.count ?? -1) }) {
                continuation.resume(returning: $0)
            }
        }
        #expect(try outcome.get() == 1)
        #expect(try engine.get("k") == nil)
        try engine.close()
    }

    @Test func realFileSystemRoundTrip() async throws {
        let directory = makeTemporaryDirectory()
        var options = EngineOptions(durability: .always)
        options.walSegmentSize = 4096
        let engine = try Engine.open(directory: directory, options: options)
        for index in 0..<200 { try await engine.put(bytes("key\(index)"), [UInt8](repeating: UInt8(index % 256), count: 100)) }
        #expect(engine.statistics.currentWALSegment > 3, "small segments roll")
        try engine.close()
        let reopened = try Engine.open(directory: directory, options: options)
        #expect(reopened.recoveryReport.entriesReplayed == 200)
        for index in 0..<200 {
            #expect(try reopened.get(bytes("key\(index)"))?.value == [UInt8](repeating: UInt8(index % 256), count: 100))
        }
        try reopened.close()
    }
}
