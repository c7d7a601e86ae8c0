import Synchronization
import Testing
@testable import IdemEngine

/// Read-modify-writes (`Engine.update`) against the tables, at the exact
/// interleavings that could break them.
@Suite struct ReadModifyWriteTests {
    /// A read-modify-write reads the tables before it takes the commit lock
    /// (`CommitPipeline.prefetch`). Here, exactly while it reads
    /// them, another writer changes the key and a flush moves that change
    /// into a new table: the update must see the change (the prefetched
    /// entry belongs to a version no longer current), not the older value.
    @Test func aReadModifyWriteSeesAChangeFlushedWhileItReadTheTables() async throws {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions(.never))
        let key = bytes("counter")
        try await engine.put(key, bytes("1"))
        try await engine.flush()
        store.fileSystem.beforeNextRead(pathContains: ".sst") {
            engine.update(key, { _ in (Mutation.put(value: bytes("2"), expiresAt: nil), ()) }, completion: { _ in })
            try! engine.pipeline.sealNow()
            try! engine.runMaintenance()
        }
        let seen = Mutex<[UInt8]?>(nil)
        engine.update(key, { current -> (Mutation?, Void) in
            seen.withLock { $0 = current?.value }
            return (nil, ())
        }, completion: { _ in })
        #expect(seen.withLock { $0 } == bytes("2"))
        #expect(engine.statistics.tables == 2, "the change was flushed between the prefetch and the commit")
        try engine.close()
    }

    /// The same with a seal instead of a flush: while the update reads the
    /// tables, the memtable it looked in is sealed and the change goes into
    /// the new one. Nothing was applied to the memtable the prefetch saw,
    /// so only the view's swap count can tell the prefetch is stale.
    @Test func aReadModifyWriteSeesAChangeMadeInAMemtableSealedWhileItReadTheTables() async throws {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions(.never))
        let key = bytes("counter")
        try await engine.put(key, bytes("1"))
        try await engine.flush()
        try await engine.put(bytes("other"), bytes("x"))  // an empty memtable is not sealed
        store.fileSystem.beforeNextRead(pathContains: ".sst") {
            try! engine.pipeline.sealNow()
            engine.update(key, { _ in (Mutation.put(value: bytes("2"), expiresAt: nil), ()) }, completion: { _ in })
        }
        let seen = Mutex<[UInt8]?>(nil)
        engine.update(key, { current -> (Mutation?, Void) in
            seen.withLock { $0 = current?.value }
            return (nil, ())
        }, completion: { _ in })
        #expect(seen.withLock { $0 } == bytes("2"))
        try engine.close()
    }
}
