import Testing
@testable import IdemEngine

/// The memtable a seal installs is the one made ahead, off the commit path,
/// when there is one — and a seal without one still makes its own. The
/// maintenance thread makes one only once memtables are being sealed.
@Suite struct PreparedMemtableTests {
    @Test func aSealInstallsTheMemtablePreparedAhead() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions()
        options.backgroundMaintenance = false
        let engine = try store.openLSM(options)
        let pipeline = engine.pipeline

        try await engine.put(bytes("a"), bytes("1"))
        try engine.runMaintenance()
        #expect(pipeline.preparedMemtable.withLock { $0 } == nil, "nothing sealed yet: nothing prepared")
        pipeline.prepareMemtable()
        let prepared = try #require(pipeline.preparedMemtable.withLock { $0 })
        pipeline.prepareMemtable()
        #expect(pipeline.preparedMemtable.withLock { $0 } === prepared, "one prepared at a time")
        try pipeline.sealNow()
        #expect(pipeline.views.current.active === prepared)
        #expect(pipeline.preparedMemtable.withLock { $0 } == nil, "used once")

        try await engine.put(bytes("b"), bytes("2"))
        try pipeline.sealNow()
        #expect(pipeline.views.current.active !== prepared, "without one prepared, the seal makes its own")
        try engine.runMaintenance()
        #expect(pipeline.preparedMemtable.withLock { $0 } != nil, "a maintenance run after a seal prepares the next")
        #expect(try engine.get(bytes("a"))?.value == bytes("1"))
        #expect(try engine.get(bytes("b"))?.value == bytes("2"))
        try engine.close()
    }
}
