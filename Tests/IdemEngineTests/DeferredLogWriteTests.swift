import Foundation
import Synchronization
import Testing
@testable import IdemEngine

/// `EngineOptions.deferLogWrites`: writes wait, unapplied, for
/// `writeDeferredLog()`, which appends them in one go.
@Suite struct DeferredLogWriteTests {
    func deferredOptions(_ store: SimulatedStore, _ durability: Durability = .everysec) -> EngineOptions {
        var options = store.options(durability)
        options.deferLogWrites = true
        return options
    }

    /// Results handed over from completion handlers.
    final class Outcomes: Sendable {
        private let results = Mutex<[Int: Result<Void, EngineError>]>([:])
        func record(_ index: Int, _ result: Result<Void, EngineError>) { results.withLock { $0[index] = result } }
        var count: Int { results.withLock { $0.count } }
        var failures: Int { results.withLock { $0.values.filter { if case .failure = $0 { true } else { false } }.count } }
    }

    @Test func writesWaitUnappliedUntilTheLogWriteThenAllCompleteWithOneAppend() throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        let outcomes = Outcomes()
        for index in 0..<10 {
            engine.write(WriteBatch(.init(kind: .value, key: bytes("k\(index)"), value: bytes("v\(index)"), expiresAt: nil))) {
                outcomes.record(index, $0)
            }
        }
        #expect(outcomes.count == 0, "no completion before the log write")
        #expect(try engine.get(bytes("k0")) == nil, "not visible before it is logged")
        let appendsBefore = engine.statistics.walAppends
        engine.writeDeferredLog()
        #expect(outcomes.count == 10 && outcomes.failures == 0)
        #expect(engine.statistics.walAppends == appendsBefore + 1, "one append for the ten writes")
        for index in 0..<10 { #expect(try engine.get(bytes("k\(index)"))?.value == bytes("v\(index)")) }
        engine.writeDeferredLog()  // nothing waits: a no-op
        try engine.close()
    }

    @Test func aReadModifyWriteSeesAWriteStillWaitingForTheLog() async throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        let seen = Mutex<[UInt8]?>(nil)
        engine.write(WriteBatch(.init(kind: .value, key: bytes("k"), value: bytes("first"), expiresAt: nil))) { _ in }
        engine.update(bytes("k"), { current -> (Mutation?, Bool) in
            seen.withLock { $0 = current?.value }
            return (.put(value: bytes("second"), expiresAt: nil), true)
        }, completion: { _ in })
        #expect(seen.withLock { $0 } == bytes("first"))
        engine.writeDeferredLog()
        #expect(try engine.get(bytes("k"))?.value == bytes("second"))
        try engine.close()
    }

    @Test func loggedWritesSurviveAProcessCrashAndCloseWritesWhatWaits() async throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store, .never))
        for index in 0..<20 {
            engine.write(WriteBatch(.init(kind: .value, key: bytes("k\(index)"), value: bytes("v"), expiresAt: nil))) { _ in }
        }
        engine.writeDeferredLog()
        // The async API writes its own record at once.
        try await engine.put(bytes("async"), bytes("v"))
        // A process crash keeps what reached the OS.
        store.fileSystem.state.withLock { $0.locked.removeAll() }
        let reopened = try Engine.open(directory: store.directory, options: deferredOptions(store, .never))
        for index in 0..<20 { #expect(try reopened.get(bytes("k\(index)")) != nil) }
        #expect(try reopened.get(bytes("async")) != nil)

        let outcomes = Outcomes()
        reopened.write(WriteBatch(.init(kind: .value, key: bytes("late"), value: bytes("v"), expiresAt: nil))) {
            outcomes.record(0, $0)
        }
        try reopened.close()
        #expect(outcomes.count == 1 && outcomes.failures == 0, "close writes and completes what waits")
        let again = try Engine.open(directory: store.directory, options: deferredOptions(store, .never))
        #expect(try again.get(bytes("late")) != nil)
        try again.close()
        _ = engine
    }

    @Test func aFailedLogWriteFailsTheWholeGroupAppliesNothingAndWritesResume() throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        let outcomes = Outcomes()
        for index in 0..<5 {
            engine.write(WriteBatch(.init(kind: .value, key: bytes("k\(index)"), value: bytes("v"), expiresAt: nil))) {
                outcomes.record(index, $0)
            }
        }
        store.fileSystem.injectWriteFailure(code: ErrorNumber.noSpace, pathContains: "wal-", times: 1)
        engine.writeDeferredLog()
        #expect(outcomes.count == 5 && outcomes.failures == 5)
        for index in 0..<5 { #expect(try engine.get(bytes("k\(index)")) == nil, "nothing of a failed group is applied") }

        let retried = Outcomes()
        engine.write(WriteBatch(.init(kind: .value, key: bytes("k0"), value: bytes("again"), expiresAt: nil))) {
            retried.record(0, $0)
        }
        engine.writeDeferredLog()
        #expect(retried.count == 1 && retried.failures == 0, "ENOSPC is not fatal: writes resume")
        #expect(try engine.get(bytes("k0"))?.value == bytes("again"))
        try engine.close()
    }

    @Test func aFlushWritesWhatWaitsForTheLogFirst() async throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        let outcomes = Outcomes()
        engine.write(WriteBatch(.init(kind: .value, key: bytes("k"), value: bytes("v"), expiresAt: nil))) {
            outcomes.record(0, $0)
        }
        try await engine.flush()
        #expect(outcomes.count == 1 && outcomes.failures == 0, "the flush wrote and completed the waiting write")
        #expect(engine.statistics.tables == 1, "and it is in the flushed table")
        #expect(try engine.get(bytes("k"))?.value == bytes("v"))
        try engine.close()
    }

    /// Several threads commit and write deferred groups at once (as the
    /// server's event loops do), with a memtable small enough to be sealed
    /// many times on the way: every increment counts, before and after a
    /// reopen.
    @Test func concurrentGroupWritersLoseNoIncrementAcrossSeals() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions(.never, memtableSize: 2 << 10)
        options.deferLogWrites = true
        let engine = try Engine.open(directory: store.directory, options: options)
        let firstSegment = engine.statistics.currentWALSegment
        let keys = (0..<200).map { bytes("counter\($0)") }
        let threads = 4, incrementsPerThread = 600
        let completed = Outcomes()
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for step in 0..<incrementsPerThread {
                let key = keys[(thread * 7 + step) % keys.count]
                engine.update(key, { current -> (Mutation?, Void) in
                    let count = current.map { Int(String(decoding: $0.value, as: UTF8.self))! } ?? 0
                    return (.put(value: bytes("\(count + 1)"), expiresAt: nil), ())
                }, completion: { result in completed.record(thread * incrementsPerThread + step, result.mapError { $0 as! EngineError }) })
                if step % 5 == 4 { engine.writeDeferredLog() }
            }
            engine.writeDeferredLog()
        }
        #expect(completed.count == threads * incrementsPerThread && completed.failures == 0)
        #expect(engine.statistics.currentWALSegment > firstSegment + 3, "the memtable was sealed along the way")
        func total(_ engine: Engine) throws -> Int {
            try keys.reduce(0) { sum, key in
                try sum + Int(String(decoding: engine.get(key)?.value ?? bytes("0"), as: UTF8.self))!
            }
        }
        #expect(try total(engine) == threads * incrementsPerThread)
        try engine.close()
        let reopened = try Engine.open(directory: store.directory, options: options)
        #expect(try total(reopened) == threads * incrementsPerThread, "the log replays to the same counts")
        try reopened.close()
    }

    // MARK: `.always`: groups released by `writeDeferredLog()`

    /// Under `.always` a release hands the waiting writes to the commit
    /// thread; each is acknowledged only once synced, so a crash right
    /// after keeps every one.
    @Test func underAlwaysAReleasedGroupIsSyncedBeforeItsAcknowledgement() throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store, .always))
        let outcomes = Outcomes()
        let done = DispatchSemaphore(value: 0)
        let syncsBefore = engine.statistics.walSyncs
        for index in 0..<20 {
            engine.write(WriteBatch(.init(kind: .value, key: bytes("k\(index)"), value: bytes("v\(index)"), expiresAt: nil))) {
                outcomes.record(index, $0)
                done.signal()
            }
        }
        engine.writeDeferredLog()
        for _ in 0..<20 { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(outcomes.count == 20 && outcomes.failures == 0)
        #expect(engine.statistics.walSyncs > syncsBefore)
        let crashed = store.crashed()
        let reopened = try Engine.open(directory: crashed.directory, options: crashed.options(.always))
        for index in 0..<20 { #expect(try reopened.get(bytes("k\(index)"))?.value == bytes("v\(index)")) }
        try reopened.close()
        try engine.close()
    }

    /// A writer that never releases is delayed (by at most about a
    /// millisecond), never stuck; flush and close release what waits.
    @Test func underAlwaysWritesCompleteWithoutARelease() async throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store, .always))
        let done = DispatchSemaphore(value: 0)
        for round in 0..<50 {
            engine.write(WriteBatch(.init(kind: .value, key: bytes("r\(round)"), value: bytes("v"), expiresAt: nil))) { result in
                if case .success = result { done.signal() }
            }
            #expect(done.wait(timeout: .now() + 10) == .success, "round \(round) completed with no release")
        }
        // Held writes, then a flush: it must not wait for a release forever.
        let outcomes = Outcomes()
        for index in 0..<10 {
            engine.write(WriteBatch(.init(kind: .value, key: bytes("f\(index)"), value: bytes("v"), expiresAt: nil))) {
                outcomes.record(index, $0)
            }
        }
        try await engine.flush()
        #expect(try engine.get(bytes("f9"))?.value == bytes("v"))
        for index in 0..<10 {
            engine.write(WriteBatch(.init(kind: .value, key: bytes("c\(index)"), value: bytes("v"), expiresAt: nil))) {
                outcomes.record(10 + index, $0)
            }
        }
        try engine.close()
        #expect(outcomes.count == 20 && outcomes.failures == 0, "close completes the held writes")
        let reopened = try Engine.open(directory: store.directory, options: store.options(.always))
        #expect(try reopened.get(bytes("c9"))?.value == bytes("v"))
        try reopened.close()
    }
}
