import IdemEngine
import Synchronization
import Testing
@testable import Idempotency

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

/// An engine over a simulated file system with a manual clock, and a store on it.
struct Harness {
    var fileSystem = SimulatedFileSystem()
    let clock = ManualClock()

    func options() -> EngineOptions {
        var options = EngineOptions(durability: .always)
        options.fileSystem = fileSystem
        options.clock = clock
        options.backgroundMaintenance = false
        return options
    }

    func open(_ configuration: IdempotencyConfiguration = IdempotencyConfiguration()) throws -> IdempotencyStore {
        IdempotencyStore(engine: try Engine.open(directory: "/idem", options: options()), configuration: configuration)
    }
}

@Suite struct IdempotencyStoreTests {
    let key = bytes("order-42")

    @Test func everyTransitionOfTheStateMachine() async throws {
        let harness = Harness()
        let store = try harness.open()
        let fingerprint = bytes("sha256-of-request")

        // absent → acquired, attempt 1
        guard case .acquired(let token, 1, nil) = try await store.begin(key, fingerprint: fingerprint, lease: 10_000) else {
            Issue.record("expected acquisition"); return
        }
        // live lease, same fingerprint → in progress with the remaining lease
        harness.clock.advance(byMilliseconds: 4_000)
        #expect(try await store.begin(key, fingerprint: fingerprint, lease: 10_000) == .inProgress(retryAfterMilliseconds: 6_000))
        // different fingerprint → mismatch, in any state
        #expect(try await store.begin(key, fingerprint: bytes("other"), lease: 10_000) == .mismatch)
        // no fingerprint on the retry: not a mismatch
        #expect(try await store.begin(key, lease: 10_000) == .inProgress(retryAfterMilliseconds: 6_000))
        // owner calls
        #expect(try await store.checkpoint(key, token: token, recoveryPoint: bytes("step 2 of 3")) == .ok)
        #expect(try await store.extend(key, token: token, lease: 20_000) == .ok)
        #expect(try await store.begin(key, lease: 10_000) == .inProgress(retryAfterMilliseconds: 20_000))
        // complete → replay, with identical bytes, forever after (until TTL)
        #expect(try await store.complete(key, token: token, response: bytes("{\"paid\":true}")) == .ok)
        #expect(try await store.begin(key, fingerprint: fingerprint) == .completed(response: bytes("{\"paid\":true}")))
        #expect(try await store.begin(key, fingerprint: bytes("other")) == .mismatch)
        // completing again with the owner's token is harmless
        #expect(try await store.complete(key, token: token, response: bytes("{\"paid\":true}")) == .ok)
        // owner calls on a completed record: the lease is gone
        #expect(try await store.extend(key, token: token, lease: 1000) == .leaseLost)
        #expect(try await store.abort(key, token: token) == .leaseLost)
        let record = try store.get(key)
        #expect(record?.state == .completed && record?.attempt == 1 && record?.recoveryPoint == bytes("step 2 of 3"))
        #expect(record?.completedAt == harness.clock.nowMilliseconds())
        // forget
        #expect(try await store.forget(key) == .deleted)
        #expect(try await store.forget(key) == .notFound)
        #expect(try store.get(key) == nil)
        let counts = store.metrics.snapshot
        #expect(counts.acquired == 1 && counts.replayed == 1 && counts.mismatches == 2 && counts.inProgressConflicts == 3)
    }

    @Test func leaseExpiryAtTheExactBoundaryAllowsTakeover() async throws {
        let harness = Harness()
        let store = try harness.open()
        guard case .acquired(let first, 1, _) = try await store.begin(key, lease: 1_000) else { Issue.record("no acquisition"); return }
        #expect(try await store.checkpoint(key, token: first, recoveryPoint: bytes("half done")) == .ok)
        harness.clock.advance(byMilliseconds: 999)
        #expect(try await store.begin(key, lease: 1_000) == .inProgress(retryAfterMilliseconds: 1))
        harness.clock.advance(byMilliseconds: 1)
        guard case .acquired(let second, 2, let recovery) = try await store.begin(key, lease: 1_000) else {
            Issue.record("the lapsed lease must be taken over"); return
        }
        #expect(recovery == bytes("half done"))
        #expect(second != first)
        // The old owner is fenced out of every call and changes nothing.
        #expect(try await store.complete(key, token: first, response: bytes("late")) == .leaseLost)
        #expect(try await store.extend(key, token: first, lease: 5_000) == .leaseLost)
        #expect(try await store.checkpoint(key, token: first, recoveryPoint: bytes("x")) == .leaseLost)
        #expect(try await store.abort(key, token: first) == .leaseLost)
        let record = try store.get(key)
        #expect(record?.token == second && record?.recoveryPoint == bytes("half done") && record?.state == .inProgress)
        #expect(try await store.complete(key, token: second, response: bytes("done")) == .ok)
        #expect(store.metrics.snapshot.takeovers == 1 && store.metrics.snapshot.leaseLost == 4)
    }

    @Test func abortDeletesOrKeeps() async throws {
        let harness = Harness()
        let store = try harness.open()
        guard case .acquired(let token, _, _) = try await store.begin(key) else { return }
        #expect(try await store.abort(key, token: token, keep: false) == .ok)
        #expect(try store.get(key) == nil)
        guard case .acquired(let again, 1, _) = try await store.begin(key) else { Issue.record("fresh start after abort"); return }
        #expect(try await store.checkpoint(key, token: again, recoveryPoint: bytes("rp")) == .ok)
        #expect(try await store.abort(key, token: again, keep: true) == .ok)
        // Released: the next begin takes over at once, with the recovery point.
        guard case .acquired(_, 2, bytes("rp")) = try await store.begin(key) else { Issue.record("takeover after keep"); return }
    }

    @Test func forgetRefusesInProgressUnlessForced() async throws {
        let store = try Harness().open()
        _ = try await store.begin(key)
        #expect(try await store.forget(key) == .busy)
        #expect(try await store.forget(key, force: true) == .deleted)
    }

    @Test func keysExpireWithTheirTTL() async throws {
        let harness = Harness()
        let store = try harness.open()
        guard case .acquired(let token, _, _) = try await store.begin(key, lease: 1_000, ttl: 60_000) else { return }
        #expect(try await store.complete(key, token: token, response: bytes("r"), ttl: 5_000) == .ok)
        harness.clock.advance(byMilliseconds: 4_999)
        #expect(try await store.begin(key) == .completed(response: bytes("r")))
        harness.clock.advance(byMilliseconds: 1)
        guard case .acquired(_, 1, nil) = try await store.begin(key) else { Issue.record("expired key starts afresh"); return }
    }

    @Test func namespacesNeverSeeEachOther() async throws {
        let store = try Harness().open()
        guard case .acquired(let token, _, _) = try await store.begin(key, namespace: bytes("tenant-a")) else { return }
        #expect(try await store.complete(key, namespace: bytes("tenant-a"), token: token, response: bytes("a")) == .ok)
        guard case .acquired = try await store.begin(key, namespace: bytes("tenant-b")) else { Issue.record("isolation"); return }
        #expect(try store.get(key, namespace: bytes("tenant-b"))?.state == .inProgress)
        #expect(try store.get(key, namespace: bytes("tenant-a"))?.response == bytes("a"))
        #expect(try store.get(key) == nil)
        // A namespace that is a prefix of another's name does not leak either.
        #expect(try store.get(bytes("a:order-42"), namespace: bytes("tenant")) == nil)
    }

    @Test func invalidInputHasNamedErrors() async throws {
        var configuration = IdempotencyConfiguration()
        configuration.maximumKeyLength = 10
        configuration.maximumPayloadSize = 8
        let store = try Harness().open(configuration)
        await #expect(throws: IdempotencyError.invalidKey("empty")) { _ = try await store.begin([]) }
        await #expect(throws: IdempotencyError.self) { _ = try await store.begin(bytes("0123456789A")) }
        await #expect(throws: IdempotencyError.self) { _ = try await store.begin(bytes("with space")) }
        await #expect(throws: IdempotencyError.fingerprintTooLong(size: 65, limit: 64)) {
            _ = try await store.begin(bytes("k"), fingerprint: [UInt8](repeating: 1, count: 65))
        }
        await #expect(throws: IdempotencyError.invalidLease(milliseconds: 0)) { _ = try await store.begin(bytes("k"), lease: 0) }
        await #expect(throws: IdempotencyError.invalidTTL(milliseconds: -1)) { _ = try await store.begin(bytes("k"), ttl: -1) }
        guard case .acquired(let token, _, _) = try await store.begin(bytes("k")) else { return }
        await #expect(throws: IdempotencyError.responseTooLarge(size: 9, limit: 8)) {
            _ = try await store.complete(bytes("k"), token: token, response: [UInt8](repeating: 0, count: 9))
        }
        #expect(try store.get(bytes("k"))?.state == .inProgress, "a refused call changes nothing")
    }

    @Test func aThousandConcurrentBeginsHaveOneWinner() async throws {
        let store = try Harness().open()
        let outcomes = try await withThrowingTaskGroup(of: BeginOutcome.self) { group in
            for _ in 0..<1000 { group.addTask { try await store.begin(self.key, fingerprint: bytes("fp")) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let winners = outcomes.compactMap { outcome -> OwnerToken? in
            if case .acquired(let token, _, _) = outcome { return token }
            return nil
        }
        #expect(winners.count == 1)
        #expect(outcomes.filter { if case .inProgress = $0 { true } else { false } }.count == 999)
        #expect(try await store.complete(key, token: winners[0], response: bytes("the one response")) == .ok)
        let replays = try await withThrowingTaskGroup(of: BeginOutcome.self) { group in
            for _ in 0..<200 { group.addTask { try await store.begin(self.key, fingerprint: bytes("fp")) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(replays.allSatisfy { $0 == .completed(response: bytes("the one response")) })
    }

    @Test func survivesRestartAndCrash() async throws {
        var harness = Harness()
        var store = try harness.open()
        // begin, complete, reopen → replay
        guard case .acquired(let token, _, _) = try await store.begin(bytes("paid"), lease: 1_000) else { return }
        #expect(try await store.complete(bytes("paid"), token: token, response: bytes("receipt")) == .ok)
        // begin, then power loss before any complete
        guard case .acquired(let crashedOwner, _, _) = try await store.begin(bytes("crashy"), lease: 1_000) else { return }
        harness.fileSystem = harness.fileSystem.crashClone()
        try store.engine.close()
        store = try harness.open()
        #expect(try await store.begin(bytes("paid")) == .completed(response: bytes("receipt")))
        #expect(try await store.begin(bytes("crashy"), lease: 1_000) == .inProgress(retryAfterMilliseconds: 1_000))
        harness.clock.advance(byMilliseconds: 1_000)
        guard case .acquired(_, 2, _) = try await store.begin(bytes("crashy"), lease: 1_000) else {
            Issue.record("after the lease, the crashed attempt is taken over"); return
        }
        #expect(try await store.complete(bytes("crashy"), token: crashedOwner, response: bytes("zombie")) == .leaseLost)
        try store.engine.close()
    }

    /// `apply`, the event loop's form: the outcome at once. A new key's
    /// acquisition is durable, and counted, only once its log write is
    /// done; a retry answered from a durable record is both at once.
    @Test func applyReportsAndCountsAnOutcomeOnceItIsDurable() throws {
        let harness = Harness()
        var options = harness.options()
        options.durability = .everysec
        options.deferLogWrites = true
        let engine = try Engine.open(directory: "/idem", options: options)
        let store = IdempotencyStore(engine: engine, configuration: IdempotencyConfiguration())
        final class Reports: Sendable {
            let outcomes = Mutex<[IdempotencyStore.Outcome]>([])
        }
        let reports = Reports()

        let begun = try store.apply(.begin(fingerprint: nil, lease: 10_000, ttl: nil), key: key)
        guard case .begin(.acquired(_, 1, nil)) = begun.outcome else {
            Issue.record("expected acquisition, got \(begun.outcome)"); return
        }
        #expect(!begun.isDurable)
        begun.whenDurable { result in
            if case .success(let outcome) = result { reports.outcomes.withLock { $0.append(outcome) } }
        }
        #expect(reports.outcomes.withLock { $0 }.isEmpty)
        #expect(store.metrics.snapshot.acquired == 0, "not counted before it is durable")

        engine.writeDeferredLog()
        #expect(reports.outcomes.withLock { $0 } == [begun.outcome])
        #expect(store.metrics.snapshot.acquired == 1)

        let retry = try store.apply(.begin(fingerprint: nil, lease: 10_000, ttl: nil), key: key)
        #expect(retry.isDurable, "the record it read is durable: nothing to wait for")
        #expect(retry.outcome == .begin(.inProgress(retryAfterMilliseconds: 10_000)))
        #expect(store.metrics.snapshot.inProgressConflicts == 1, "counted at once")
        retry.whenDurable { result in
            if case .success(let outcome) = result { reports.outcomes.withLock { $0.append(outcome) } }
        }
        #expect(reports.outcomes.withLock { $0 } == [begun.outcome, retry.outcome], "called at once")
        #expect(store.metrics.snapshot.inProgressConflicts == 1, "and not counted twice")
        try engine.close()
    }

    @Test func ownerTokensPrintAsTheirHexDigits() throws {
        let token = try #require(OwnerToken(bytes: (0..<16).map { UInt8($0 * 17) }))
        #expect(token.hex == "00112233445566778899aabbccddeeff")
        #expect(token.hexDigits == Array(token.hex.utf8))
        #expect(OwnerToken(hex: token.hex) == token)
        let random = OwnerToken.random()
        #expect(OwnerToken(hex: random.hex) == random)
    }

    @Test func recordEncodingRoundTripsAndRejectsDamage() throws {
        let record = IdempotencyRecord(state: .completed, fingerprint: bytes("fp"), token: OwnerToken.random(), attempt: 3,
                                       leaseDeadline: 0, recoveryPoint: bytes("rp"), response: bytes("resp"),
                                       createdAt: 1_700_000_000_000, completedAt: 1_700_000_000_500, expiresAt: 1_700_086_400_500)
        let encoded = RecordCodec.encode(record)
        #expect(try RecordCodec.decode(encoded) == record)
        for length in 0..<encoded.count {
            #expect(throws: RecordCodec.DecodingError.self) { _ = try RecordCodec.decode(Array(encoded.prefix(length))) }
        }
        var badVersion = encoded
        badVersion[0] = 9
        #expect(throws: RecordCodec.DecodingError.self) { _ = try RecordCodec.decode(badVersion) }
        #expect(throws: RecordCodec.DecodingError.self) { _ = try RecordCodec.decode(encoded + [0]) }
    }
}
