import Testing
@testable import IdemEngine

/// Disk faults: a full disk fails the write and loses nothing; a failed
/// sync stops writes for good (never retried), reads keep working.
@Suite struct FaultTests {
    @Test(arguments: Durability.allCases)
    func outOfSpaceFailsTheWriteAndWritesResumeLater(durability: Durability) async throws {
        let store = SimulatedStore()
        let engine = try store.open(durability)
        try await engine.put("before", "1")
        // The failing write lands 5 bytes before ENOSPC: a partial record.
        store.fileSystem.injectWriteFailure(code: ErrorNumber.noSpace, pathContains: "wal-", afterBytes: 5, times: 1)
        do {
            try await engine.put("during", "2")
            Issue.record("write should have failed")
        } catch {
            guard case .io(let failure) = error else { Issue.record("unexpected \(error)"); return }
            #expect(failure.isOutOfSpace)
            #expect(error.description.contains("no space left"))
        }
        #expect(try engine.get("during") == nil)
        #expect(try engine.get("before")?.value == bytes("1"))
        try await engine.put("after", "3")
        try engine.close()

        let reopened = try store.crashed().open()
        #expect(try reopened.get("before")?.value == bytes("1"))
        #expect(try reopened.get("during") == nil)
        #expect(try reopened.get("after")?.value == bytes("3"))
        #expect(reopened.recoveryReport.tornTailBytes == 0, "the partial record was cut at once")
        try reopened.close()
    }

    @Test func failedSyncMakesTheEngineReadOnlyForGood() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.always)
        try await engine.put("kept", "1")
        store.fileSystem.injectSyncFailure(code: ErrorNumber.io, times: 1)
        await #expect { try await engine.put("lost", "2") } throws: { error in
            guard case EngineError.readOnly(let reason) = error else { return false }
            return reason.contains("fdatasync")
        }
        // The fault is gone, but the engine does not retry or pretend.
        await #expect { try await engine.put("later", "3") } throws: { error in
            if case EngineError.readOnly = error { return true }
            return false
        }
        // Even a read-modify-write that would change nothing is refused.
        await #expect { _ = try await engine.update(bytes("kept")) { _ -> (Mutation?, Int) in (nil, 0) } } throws: { error in
            if case EngineError.readOnly = error { return true }
            return false
        }
        #expect(try engine.get("kept")?.value == bytes("1"))
        #expect(try engine.get("lost") == nil)
        #expect(engine.statistics.readOnlyReason != nil)
        try engine.close()
    }

    @Test func failedPeriodicSyncMakesEverysecReadOnly() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.everysec)
        store.fileSystem.injectSyncFailure(code: ErrorNumber.io)
        try await engine.put("acknowledged", "1")
        // The periodic syncer runs within about a second.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while engine.statistics.readOnlyReason == nil && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(engine.statistics.readOnlyReason != nil)
        await #expect(throws: EngineError.self) { try await engine.put("refused", "2") }
        store.fileSystem.clearFaults()
        try? engine.close()
    }

    @Test func failedSegmentCreationOnOpenIsAnError() throws {
        let store = SimulatedStore()
        store.fileSystem.injectSyncFailure(code: ErrorNumber.io, times: 1)
        #expect(throws: EngineError.self) { _ = try store.open() }
        store.fileSystem.clearFaults()
        store.fileSystem.state.withLock { $0.locked.removeAll() }
        try store.open().close()
    }
}
