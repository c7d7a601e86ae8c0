import IdemEngine

public struct IdempotencyConfiguration: Sendable {
    /// Lease of a fresh attempt when `begin` names none (milliseconds).
    public var defaultLease: Int64 = 30_000
    /// How long a key is remembered when `begin`/`complete` name no TTL.
    public var defaultTTL: Int64 = 86_400_000
    public var minimumKeyLength = 1
    public var maximumKeyLength = 255
    public var keyCharacters: KeyCharacters = .printableASCII
    public var maximumFingerprintLength = 64
    /// The largest response or recovery point stored.
    public var maximumPayloadSize = 4 << 20
    /// When set, `begin` refuses keys this generator did not issue.
    public var requireIssuedKeysFrom: KeyGenerator?

    public init() {}
}

/// Idempotency records on top of the engine: begin / complete / abort /
/// extend / checkpoint with leases and fencing tokens.
///
/// Every operation is one atomic read-modify-write of the key's record
/// (`Engine.update`), so concurrent callers are linearized: of any number
/// of simultaneous `begin`s on a fresh key exactly one acquires. Expiry is
/// checked against the engine's clock inside that step, never trusted to
/// the storage having removed old data.
///
/// State machine (`begin` on the left, owner calls carry the token):
///
///     absent ──begin──▶ inProgress(token, attempt 1)
///     inProgress, lease live   ──begin──▶ inProgress (caller told to retry)
///     inProgress, lease lapsed ──begin──▶ inProgress(new token, attempt+1)  old token fenced
///     inProgress ──complete(token)──▶ completed(response)   ──begin──▶ replay
///     inProgress ──abort(token)──▶ absent (or lease released, keep: true)
public final class IdempotencyStore: Sendable {
    public let engine: Engine
    public let configuration: IdempotencyConfiguration
    public let metrics = IdempotencyMetrics()
    private let policy: KeyPolicy

    public init(engine: Engine, configuration: IdempotencyConfiguration = IdempotencyConfiguration()) {
        self.engine = engine
        self.configuration = configuration
        self.policy = KeyPolicy(minimumLength: configuration.minimumKeyLength,
                                maximumLength: configuration.maximumKeyLength,
                                characters: configuration.keyCharacters)
    }

    private var now: Int64 { engine.options.clock.nowMilliseconds() }

    // MARK: - Operations

    /// Starts (or joins) the operation named by `key`; see `BeginOutcome`.
    /// `lease` and `ttl` are milliseconds.
    public func begin(_ key: [UInt8], namespace: [UInt8] = [], fingerprint: [UInt8]? = nil,
                      lease: Int64? = nil, ttl: Int64? = nil) async throws(IdempotencyError) -> BeginOutcome {
        try policy.validate(key)
        if let generator = configuration.requireIssuedKeysFrom, !generator.verify(key) { throw .keyNotIssued }
        if let fingerprint, fingerprint.count > configuration.maximumFingerprintLength {
            throw .fingerprintTooLong(size: fingerprint.count, limit: configuration.maximumFingerprintLength)
        }
        let lease = try Self.checkLease(lease ?? configuration.defaultLease)
        let ttl = try Self.checkTTL(ttl ?? configuration.defaultTTL)
        let outcome = try await mutate(key, namespace: namespace) { record, now throws(IdempotencyError) -> (Change, BeginOutcome) in
            guard var record else {
                let token = OwnerToken.random()
                let fresh = IdempotencyRecord(state: .inProgress, fingerprint: fingerprint, token: token, attempt: 1,
                                              leaseDeadline: now + lease, recoveryPoint: nil, response: nil,
                                              createdAt: now, completedAt: nil, expiresAt: now + max(ttl, lease))
                return (.store(fresh), .acquired(token: token, attempt: 1, recoveryPoint: nil))
            }
            if let fingerprint, let stored = record.fingerprint, !Self.constantTimeEquals(fingerprint, stored) {
                return (.none, .mismatch)
            }
            switch record.state {
            case .completed:
                return (.none, .completed(response: record.response ?? []))
            case .inProgress where record.leaseDeadline > now:
                return (.none, .inProgress(retryAfterMilliseconds: record.leaseDeadline - now))
            case .inProgress:
                // The owner's lease lapsed (it crashed or stalled): take over.
                // Its token is replaced, which fences it out of every later call.
                record.token = OwnerToken.random()
                record.attempt += 1
                record.leaseDeadline = now + lease
                record.expiresAt = max(record.expiresAt, now + lease)
                if record.fingerprint == nil { record.fingerprint = fingerprint }
                return (.store(record), .acquired(token: record.token, attempt: record.attempt,
                                                  recoveryPoint: record.recoveryPoint))
            }
        }
        switch outcome {
        case .acquired(_, let attempt, _): metrics.count(attempt > 1 ? .takeover : .acquired)
        case .inProgress: metrics.count(.inProgressConflict)
        case .completed: metrics.count(.replayed)
        case .mismatch: metrics.count(.mismatch)
        }
        return outcome
    }

    /// Records the response of the attempt `token` owns; every later
    /// `begin` replays it. The key is then remembered for `ttl` ms.
    /// Completing again with the same token is a no-op success.
    public func complete(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken, response: [UInt8],
                         ttl: Int64? = nil) async throws(IdempotencyError) -> CompleteOutcome {
        try policy.validate(key)
        guard response.count <= configuration.maximumPayloadSize else {
            throw .responseTooLarge(size: response.count, limit: configuration.maximumPayloadSize)
        }
        let ttl = try Self.checkTTL(ttl ?? configuration.defaultTTL)
        let outcome = try await mutate(key, namespace: namespace) { record, now throws(IdempotencyError) -> (Change, CompleteOutcome) in
            guard var record else { return (.none, .notFound) }
            guard record.token.constantTimeEquals(token) else { return (.none, .leaseLost) }
            if record.state == .completed { return (.none, .ok) }
            record.state = .completed
            record.response = response
            record.completedAt = now
            record.leaseDeadline = 0
            record.expiresAt = now + ttl
            return (.store(record), .ok)
        }
        metrics.count(outcome == .ok ? .completed : .leaseLost)
        return outcome
    }

    /// Gives up the attempt `token` owns: the record is deleted so a retry
    /// runs afresh, or with `keep` the lease is released but the record and
    /// its recovery point stay for the next attempt.
    public func abort(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken,
                      keep: Bool = false) async throws(IdempotencyError) -> OwnerOutcome {
        try policy.validate(key)
        let outcome = try await mutate(key, namespace: namespace) { record, now throws(IdempotencyError) -> (Change, OwnerOutcome) in
            guard var record, record.state == .inProgress, record.token.constantTimeEquals(token) else {
                return (.none, .leaseLost)
            }
            guard keep else { return (.delete, .ok) }
            record.leaseDeadline = now
            return (.store(record), .ok)
        }
        metrics.count(outcome == .ok ? .aborted : .leaseLost)
        return outcome
    }

    /// Heartbeat: the lease of the attempt `token` owns now ends `lease` ms from now.
    public func extend(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken,
                       lease: Int64) async throws(IdempotencyError) -> OwnerOutcome {
        try policy.validate(key)
        let lease = try Self.checkLease(lease)
        let outcome = try await mutate(key, namespace: namespace) { record, now throws(IdempotencyError) -> (Change, OwnerOutcome) in
            guard var record, record.state == .inProgress, record.token.constantTimeEquals(token) else {
                return (.none, .leaseLost)
            }
            record.leaseDeadline = now + lease
            record.expiresAt = max(record.expiresAt, now + lease)
            return (.store(record), .ok)
        }
        if outcome == .leaseLost { metrics.count(.leaseLost) }
        return outcome
    }

    /// Saves progress, so an attempt that takes over resumes instead of redoing.
    public func checkpoint(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken,
                           recoveryPoint: [UInt8]) async throws(IdempotencyError) -> OwnerOutcome {
        try policy.validate(key)
        guard recoveryPoint.count <= configuration.maximumPayloadSize else {
            throw .recoveryPointTooLarge(size: recoveryPoint.count, limit: configuration.maximumPayloadSize)
        }
        let outcome = try await mutate(key, namespace: namespace) { record, _ throws(IdempotencyError) -> (Change, OwnerOutcome) in
            guard var record, record.state == .inProgress, record.token.constantTimeEquals(token) else {
                return (.none, .leaseLost)
            }
            record.recoveryPoint = recoveryPoint
            return (.store(record), .ok)
        }
        if outcome == .leaseLost { metrics.count(.leaseLost) }
        return outcome
    }

    /// The record, for support tooling; nil when absent or expired.
    public func get(_ key: [UInt8], namespace: [UInt8] = []) throws(IdempotencyError) -> IdempotencyRecord? {
        try policy.validate(key)
        let stored: StoredValue?
        do { stored = try engine.get(try KeyPolicy.engineKey(namespace: namespace, key: key)) } catch let error as EngineError {
            throw .engine(error)
        } catch let error as IdempotencyError {
            throw error
        } catch {
            throw .corruptRecord("\(error)")
        }
        return try stored.map { stored throws(IdempotencyError) in try Self.decode(stored.value) }
    }

    /// Deletes the record. An in-progress record is refused (`busy`) unless
    /// `force`, since its owner may still be running the side effect.
    public func forget(_ key: [UInt8], namespace: [UInt8] = [], force: Bool = false) async throws(IdempotencyError) -> ForgetOutcome {
        try policy.validate(key)
        let outcome = try await mutate(key, namespace: namespace) { record, _ throws(IdempotencyError) -> (Change, ForgetOutcome) in
            guard let record else { return (.none, .notFound) }
            if record.state == .inProgress && !force { return (.none, .busy) }
            return (.delete, .deleted)
        }
        if outcome == .deleted { metrics.count(.forgotten) }
        return outcome
    }

    // MARK: - The one atomic step every operation is

    enum Change {
        case none
        case store(IdempotencyRecord)
        case delete
    }

    /// Reads the live record, lets `decide` choose, writes the choice — one
    /// linearizable engine update — and returns once it is durable.
    private func mutate<R: Sendable>(_ key: [UInt8], namespace: [UInt8],
                                     _ decide: (IdempotencyRecord?, Int64) throws(IdempotencyError) -> (Change, R)) async throws(IdempotencyError) -> R {
        let engineKey = try KeyPolicy.engineKey(namespace: namespace, key: key)
        let clock = engine.options.clock
        do {
            return try await engine.update(engineKey) { stored in
                let now = clock.nowMilliseconds()
                let record = try stored.map { stored throws(IdempotencyError) in try Self.decode(stored.value) }
                let (change, result) = try decide(record, now)
                switch change {
                case .none: return (nil, result)
                case .delete: return (.delete, result)
                case .store(let record): return (.put(value: RecordCodec.encode(record), expiresAt: record.expiresAt), result)
                }
            }
        } catch let error as IdempotencyError {
            throw error
        } catch let error as EngineError {
            throw .engine(error)
        } catch {
            throw .corruptRecord("\(error)")
        }
    }

    private static func decode(_ bytes: [UInt8]) throws(IdempotencyError) -> IdempotencyRecord {
        do { return try RecordCodec.decode(bytes) } catch { throw .corruptRecord(error.description) }
    }

    private static func checkLease(_ lease: Int64) throws(IdempotencyError) -> Int64 {
        guard lease >= 1, lease <= 86_400_000 else { throw .invalidLease(milliseconds: lease) }
        return lease
    }

    private static func checkTTL(_ ttl: Int64) throws(IdempotencyError) -> Int64 {
        guard ttl >= 1, ttl <= 10 * 365 * 86_400_000 else { throw .invalidTTL(milliseconds: ttl) }
        return ttl
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
