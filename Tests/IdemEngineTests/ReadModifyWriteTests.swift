import Synchronization
import Testing
@testable import IdemEngine

/// Read-modify-writes (`Engine.update`) against the tables, at the exact
/// interleavings that could break them. An update reads the tables before
/// it takes the commit lock (`CommitPipeline.prefetch`).
@Suite struct ReadModifyWriteTests {
    /// Runs a read-modify-write of a key held only in a table, with `race`
    /// run exactly while its prefetch reads that table (before it takes the
    /// commit lock); returns the value the update's decision saw.
    func valueSeen(activeMemtableHoldsAnotherKey: Bool = false,
                   race: @escaping @Sendable (Engine, [UInt8]) -> Void) async throws -> (seen: [UInt8]?, tables: Int) {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions(.never))
        let key = bytes("counter")
        try await engine.put(key, bytes("1"))
        try await engine.flush()
        if activeMemtableHoldsAnotherKey { try await engine.put(bytes("other"), bytes("x")) }
        store.fileSystem.beforeNextRead(pathContains: ".sst") { race(engine, key) }
        let seen = Mutex<[UInt8]?>(nil)
        engine.update(key, { current -> (Mutation?, Void) in
            seen.withLock { $0 = current?.value }
            return (nil, ())
        }, completion: { _ in })
        let tables = engine.statistics.tables
        try engine.close()
        return (seen.withLock { $0 }, tables)
    }

    static func putTwo(_ engine: Engine, _ key: [UInt8]) {
        engine.update(key, { _ in (Mutation.put(value: bytes("2"), expiresAt: nil), ()) }, completion: { _ in })
    }

    /// Exactly while the update reads the tables, another writer changes
    /// the key and a flush moves that change into a new table: the update
    /// must see the change (the prefetched entry belongs to a version no
    /// longer current), not the older value.
    @Test func aReadModifyWriteSeesAChangeFlushedWhileItReadTheTables() async throws {
        let (seen, tables) = try await valueSeen { engine, key in
            Self.putTwo(engine, key)
            try! engine.pipeline.sealNow()
            try! engine.runMaintenance()
        }
        #expect(seen == bytes("2"))
        #expect(tables == 2, "the change was flushed between the prefetch and the commit")
    }

    /// The same with a seal instead of a flush: the memtable the update
    /// looked in is sealed and the change goes into the new one. Nothing
    /// was applied to the memtable the prefetch saw, so only the views'
    /// swap count can tell that the prefetch is stale. (An empty memtable
    /// is not sealed: the active one holds another key.)
    @Test func aReadModifyWriteSeesAChangeMadeInAMemtableSealedWhileItReadTheTables() async throws {
        let (seen, _) = try await valueSeen(activeMemtableHoldsAnotherKey: true) { engine, key in
            try! engine.pipeline.sealNow()
            Self.putTwo(engine, key)
        }
        #expect(seen == bytes("2"))
    }
}
