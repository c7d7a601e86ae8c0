import Synchronization
import Testing
@testable import IdemEngine

/// Read-modify-writes that decide to change nothing (a retried `SET NX`
/// or `IDEM.BEGIN`): what the answer must respect however cheaply it is
/// given — the caller's own queued writes, and a closed engine (a
/// read-only one: `FaultTests.failedSyncMakesTheEngineReadOnlyForGood`).
@Suite struct NoOpDecisionTests {
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

    /// `apply`, the two-step form an event loop uses: the result at once,
    /// and whether it may be acted on now — a retry that read a queued
    /// write must wait for it, one that read a durable value need not.
    @Test func applyTellsWhetherItsResultMayBeActedOnNow() throws {
        let store = SimulatedStore()
        let engine = try Engine.open(directory: store.directory, options: deferredOptions(store))
        func setIfAbsent(_ value: String) throws -> AppliedUpdate<Bool> {
            try engine.apply(bytes("k")) { current -> (Mutation?, Bool) in
                current == nil ? (.put(value: bytes(value), expiresAt: nil), true) : (nil, false)
            }
        }
        let reported = Box<[String]>()
        func note(_ name: String) -> @Sendable (Result<Void, EngineError>) -> Void {
            { outcome in
                if case .success = outcome { reported.value.withLock { $0 = ($0 ?? []) + [name] } }
            }
        }

        let first = try setIfAbsent("1")
        #expect(first.result == true)
        #expect(!first.isDurable, "a write waits for its log write")
        let retry = try setIfAbsent("2")
        #expect(retry.result == false, "the retry sees the queued write")
        #expect(!retry.isDurable, "and may not answer before that write is durable")
        first.whenDurable(note("first"))
        retry.whenDurable(note("retry"))
        #expect(reported.get == nil)

        engine.writeDeferredLog()
        #expect(reported.get == ["first", "retry"])
        let later = try setIfAbsent("3")
        #expect(later.result == false)
        #expect(later.isDurable, "nothing in flight: the answer stands now")
        later.whenDurable(note("later"))
        #expect(reported.get == ["first", "retry", "later"], "called at once")
        #expect(try engine.get(bytes("k"))?.value == bytes("1"))
        try engine.close()
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
