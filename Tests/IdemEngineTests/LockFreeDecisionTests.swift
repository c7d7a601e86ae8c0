import Synchronization
import Testing
@testable import IdemEngine

/// A read-modify-write that changes nothing on a key with no write in
/// flight is answered without the commit lock (`PendingKeys`). These tests
/// pin down what that answer must still respect: the caller's own queued
/// writes, a read-only or closed engine, and deciding once when nothing
/// changed.
@Suite struct LockFreeDecisionTests {
    private func deferredOptions(_ store: SimulatedStore) -> EngineOptions {
        var options = store.options(.everysec)
        options.deferLogWrites = true
        return options
    }

    /// `SET NX` as a decision: set when absent, otherwise nothing.
    private func setIfAbsent(_ engine: Engine, _ key: String, _ value: String,
                             completion: @escaping @Sendable (Result<Bool, any Error>) -> Void) {
        engine.update(bytes(key), { current -> (Mutation?, Bool) in
            current == nil ? (.put(value: bytes(value), expiresAt: nil), true) : (nil, false)
        }, completion: completion)
    }

    final class Box<T: Sendable>: Sendable {
        let value = Mutex<T?>(nil)
        func set(_ new: T) { value.withLock { $0 = new } }
        var get: T? { value.withLock { $0 } }
    }

    @Test func aNoOpDecisionSeesTheCallersDeleteStillWaitingForTheLog() throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        engine.write(WriteBatch(.init(kind: .value, key: bytes("k"), value: bytes("old"), expiresAt: nil))) { _ in }
        engine.writeDeferredLog()
        #expect(try engine.get(bytes("k"))?.value == bytes("old"))

        // A pipelined DEL then SET NX: the memtable still holds "old", but
        // the SET NX must see the delete queued before it.
        engine.write(WriteBatch(.init(kind: .tombstone, key: bytes("k"), value: [], expiresAt: nil))) { _ in }
        let outcome = Box<Bool>()
        setIfAbsent(engine, "k", "new") { result in
            if case .success(let set) = result { outcome.set(set) }
        }
        engine.writeDeferredLog()
        #expect(!engine.pipeline.mayHaveWriteInFlight(bytes("k")), "an applied write is no longer in flight")
        #expect(outcome.get == true, "SET NX after a queued DEL of the key sets it")
        #expect(try engine.get(bytes("k"))?.value == bytes("new"))

        // Once applied, the key is settled again: a present key answers at once.
        let again = Box<Bool>()
        setIfAbsent(engine, "k", "newer") { result in
            if case .success(let set) = result { again.set(set) }
        }
        #expect(again.get == false, "answered before any log write: nothing was in flight")
        try engine.close()
    }

    @Test func aNoOpDecisionOnAnotherKeyIsNotHeldBackByQueuedWrites() throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        engine.write(WriteBatch(.init(kind: .value, key: bytes("present"), value: bytes("v"), expiresAt: nil))) { _ in }
        engine.writeDeferredLog()
        engine.write(WriteBatch(.init(kind: .value, key: bytes("other"), value: bytes("v"), expiresAt: nil))) { _ in }
        let outcome = Box<Bool>()
        setIfAbsent(engine, "present", "x") { result in
            if case .success(let set) = result { outcome.set(set) }
        }
        #expect(outcome.get == false)
        engine.writeDeferredLog()
        try engine.close()
    }

    @Test func aFailedGroupLeavesItsKeysSettled() throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        engine.write(WriteBatch(.init(kind: .value, key: bytes("k"), value: bytes("v"), expiresAt: nil))) { _ in }
        engine.writeDeferredLog()
        engine.write(WriteBatch(.init(kind: .tombstone, key: bytes("k"), value: [], expiresAt: nil))) { _ in }
        #expect(engine.pipeline.mayHaveWriteInFlight(bytes("k")))
        store.fileSystem.injectWriteFailure(code: ErrorNumber.noSpace, pathContains: "wal-", times: 1)
        engine.writeDeferredLog()
        #expect(try engine.get(bytes("k"))?.value == bytes("v"), "the failed delete was not applied")
        #expect(!engine.pipeline.mayHaveWriteInFlight(bytes("k")), "a failed write is no longer in flight")
        // The failed delete is no longer in flight: the present key is
        // answered at once, with no log write needed.
        let outcome = Box<Bool>()
        setIfAbsent(engine, "k", "x") { result in
            if case .success(let set) = result { outcome.set(set) }
        }
        #expect(outcome.get == false)
        try engine.close()
    }

    @Test func aChangeDecidedBeforeTheLockIsDecidedOnceWhenNothingChanged() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.everysec)
        try await engine.put("k", "1")
        let calls = Mutex(0)
        let result = try await engine.update(bytes("k")) { current -> (Mutation?, Int) in
            calls.withLock { $0 += 1 }
            return (.put(value: bytes("2"), expiresAt: nil), current?.value.count ?? -1)
        }
        #expect(result == 1)
        #expect(calls.withLock { $0 } == 1, "the decision made before the lock stood")
        #expect(try engine.get("k")?.value == bytes("2"))
        try engine.close()
    }

    @Test func aReadOnlyEngineRefusesEvenADecisionThatChangesNothing() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.always)
        try await engine.put("k", "1")
        store.fileSystem.injectSyncFailure(code: ErrorNumber.io, times: 1)
        await #expect(throws: EngineError.self) { try await engine.put("lost", "2") }
        #expect(engine.statistics.readOnlyReason != nil)
        await #expect { _ = try await engine.update(bytes("k")) { _ -> (Mutation?, Int) in (nil, 0) } } throws: { error in
            if case EngineError.readOnly = error { return true }
            return false
        }
        try? engine.close()
    }

    @Test func aClosedEngineRefusesADecisionThatChangesNothing() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.everysec)
        try await engine.put("k", "1")
        try engine.close()
        await #expect { _ = try await engine.update(bytes("k")) { _ -> (Mutation?, Int) in (nil, 0) } } throws: { error in
            if case EngineError.closed = error { return true }
            return false
        }
    }
}
