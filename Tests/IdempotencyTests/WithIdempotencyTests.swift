import IdemEngine
import Synchronization
import Testing
@testable import Idempotency

final class RunCounter: Sendable {
    let runs = Atomic<Int>(0)
}

@Suite struct WithIdempotencyTests {
    @Test func runsOnceAndReplaysAfterwards() async throws {
        let store = try Harness().open()
        let counter = RunCounter()
        for round in 0..<3 {
            let result = try await store.withIdempotency(key: Array("charge-1".utf8), fingerprint: [1, 2]) { attempt in
                counter.runs.add(1, ordering: .relaxed)
                #expect(attempt.number == 1)
                return Array("charged 10 EUR".utf8)
            }
            #expect(result.response == Array("charged 10 EUR".utf8))
            #expect(result.replayed == (round > 0))
        }
        #expect(counter.runs.load(ordering: .relaxed) == 1)
    }

    @Test func failurePoliciesDecideWhatARetrySees() async throws {
        struct Declined: Error {}
        let store = try Harness().open()
        // delete: the retry runs again
        await #expect(throws: Declined.self) {
            _ = try await store.withIdempotency(key: Array("a".utf8)) { _ in throw Declined() }
        }
        #expect(try store.get(Array("a".utf8)) == nil)
        // keep: the retry takes over with the recovery point
        await #expect(throws: Declined.self) {
            _ = try await store.withIdempotency(key: Array("b".utf8), onFailure: .keep) { attempt in
                try await attempt.checkpoint(Array("reserved stock".utf8))
                throw Declined()
            }
        }
        let resumed = try await store.withIdempotency(key: Array("b".utf8)) { attempt in
            #expect(attempt.number == 2 && attempt.recoveryPoint == Array("reserved stock".utf8))
            return Array("ok".utf8)
        }
        #expect(!resumed.replayed)
        // storeError: the failure itself is replayed
        await #expect(throws: Declined.self) {
            _ = try await store.withIdempotency(key: Array("c".utf8), onFailure: .storeError { _ in Array("declined".utf8) }) { _ in
                throw Declined()
            }
        }
        let replay = try await store.withIdempotency(key: Array("c".utf8)) { _ in Array("never".utf8) }
        #expect(replay == IdempotentResult(response: Array("declined".utf8), replayed: true))
    }

    @Test func concurrentCallersGetInProgressOrTheReplay() async throws {
        let store = try Harness().open()
        let counter = RunCounter()
        let gate = AsyncGate()
        let first = Task {
            try await store.withIdempotency(key: Array("slow".utf8)) { _ in
                counter.runs.add(1, ordering: .relaxed)
                await gate.wait()
                return Array("done".utf8)
            }
        }
        while try store.get(Array("slow".utf8)) == nil { await Task.yield() }
        await #expect(throws: IdempotencyError.self) {
            _ = try await store.withIdempotency(key: Array("slow".utf8)) { _ in Array("twice!".utf8) }
        }
        await gate.open()
        #expect(try await first.value.response == Array("done".utf8))
        #expect(counter.runs.load(ordering: .relaxed) == 1)
    }

    @Test func theHeartbeatKeepsTheLeaseAlive() async throws {
        let harness = Harness()
        let store = try harness.open()
        let gate = AsyncGate()
        let worker = Task {
            try await store.withIdempotency(key: Array("long".utf8), lease: 30) { _ in
                await gate.wait()
                return Array("finished".utf8)
            }
        }
        // Wait (real time, milliseconds) for a few heartbeats to land.
        var deadline = try store.get(Array("long".utf8))?.leaseDeadline ?? 0
        let initial = deadline
        while deadline == initial {
            harness.clock.advance(byMilliseconds: 5)
            try await Task.sleep(for: .milliseconds(5))
            deadline = try store.get(Array("long".utf8))?.leaseDeadline ?? initial
        }
        #expect(deadline > initial, "extended by the heartbeat")
        await gate.open()
        #expect(try await worker.value.response == Array("finished".utf8))
    }

    @Test func cancellationAbortsCleanly() async throws {
        let store = try Harness().open()
        let worker = Task {
            try await store.withIdempotency(key: Array("cancel-me".utf8)) { _ in
                try await Task.sleep(for: .seconds(60))
                return Array("never".utf8)
            }
        }
        while try store.get(Array("cancel-me".utf8)) == nil { await Task.yield() }
        worker.cancel()
        await #expect(throws: CancellationError.self) { _ = try await worker.value }
        #expect(try store.get(Array("cancel-me".utf8)) == nil, "the default policy deleted the record")
    }
}

/// A one-shot gate tasks can wait on.
actor AsyncGate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}
