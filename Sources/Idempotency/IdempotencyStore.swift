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
        try await run(beginStep(key, namespace: namespace, fingerprint: fingerprint, lease: lease, ttl: ttl))
    }

    /// Records the response of the attempt `token` owns; every later
    /// `begin` replays it. The key is then remembered for `ttl` ms.
    /// Completing again with the same token is a no-op success.
    public func complete(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken, response: [UInt8],
                         ttl: Int64? = nil) async throws(IdempotencyError) -> CompleteOutcome {
        try await run(completeStep(key, namespace: namespace, token: token, response: response, ttl: ttl))
    }

    /// Gives up the attempt `token` owns: the record is deleted so a retry
    /// runs afresh, or with `keep` the lease is released but the record and
    /// its recovery point stay for the next attempt.
    public func abort(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken,
                      keep: Bool = false) async throws(IdempotencyError) -> OwnerOutcome {
        try await run(abortStep(key, namespace: namespace, token: token, keep: keep))
    }

    /// Heartbeat: the lease of the attempt `token` owns now ends `lease` ms from now.
    public func extend(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken,
                       lease: Int64) async throws(IdempotencyError) -> OwnerOutcome {
        try await run(extendStep(key, namespace: namespace, token: token, lease: lease))
    }

    /// Saves progress, so an attempt that takes over resumes instead of redoing.
    public func checkpoint(_ key: [UInt8], namespace: [UInt8] = [], token: OwnerToken,
                           recoveryPoint: [UInt8]) async throws(IdempotencyError) -> OwnerOutcome {
        try await run(checkpointStep(key, namespace: namespace, token: token, recoveryPoint: recoveryPoint))
    }

    /// Deletes the record. An in-progress record is refused (`busy`) unless
    /// `force`, since its owner may still be running the side effect.
    public func forget(_ key: [UInt8], namespace: [UInt8] = [], force: Bool = false) async throws(IdempotencyError) -> ForgetOutcome {
        try await run(forgetStep(key, namespace: namespace, force: force))
    }

    /// The record, for support tooling; nil when absent or expired.
    public func get(_ key: [UInt8], namespace: [UInt8] = []) throws(IdempotencyError) -> IdempotencyRecord? {
        try policy.validate(key)
        let engineKey = try Keyspace.engineKey(namespace: namespace, key: key)
        let stored: StoredValue?
        do { stored = try engine.get(engineKey) } catch {
            throw .engine(error)
        }
        return try stored.map { stored throws(IdempotencyError) in try Self.decode(stored) }
    }

    /// Throws what `begin` would for a malformed key.
    public func validate(key: [UInt8]) throws(IdempotencyError) {
        try policy.validate(key)
    }

    /// Decodes a stored keyspace value as a record (`wrongType` for a string).
    public static func record(from value: StoredValue) throws(IdempotencyError) -> IdempotencyRecord {
        try decode(value)
    }

    /// `record(from:)` for a value's bytes (a backup, a fuzzer's input).
    public static func record(from bytes: [UInt8]) throws(IdempotencyError) -> IdempotencyRecord {
        let decoded = bytes.withUnsafeBytes { bytes in
            Result { () throws(IdempotencyError) -> IdempotencyRecord in try decode(bytes) }
        }
        return try decoded.get()
    }

    /// The stored form of a record (a keyspace value of type `0x01`).
    public static func encode(_ record: IdempotencyRecord) -> [UInt8] {
        RecordCodec.encode(record)
    }

    // MARK: - The same operations for callers that must not suspend

    /// One of the operations above, named as a value (see `perform`).
    public enum Operation: Sendable {
        case begin(fingerprint: [UInt8]?, lease: Int64?, ttl: Int64?)
        case complete(token: OwnerToken, response: [UInt8], ttl: Int64?)
        case abort(token: OwnerToken, keep: Bool)
        case extend(token: OwnerToken, lease: Int64)
        case checkpoint(token: OwnerToken, recoveryPoint: [UInt8])
        case forget(force: Bool)
    }

    public enum Outcome: Sendable, Equatable {
        case begin(BeginOutcome)
        case complete(CompleteOutcome)
        /// abort, extend and checkpoint.
        case owner(OwnerOutcome)
        case forget(ForgetOutcome)
    }

    /// Runs `operation` on `key` without suspending (for event loops):
    /// the decision is taken before this returns; `completion` runs once it
    /// is durable — at once when it already is, otherwise on the engine's
    /// commit thread.
    public func perform(_ operation: Operation, key: [UInt8], namespace: [UInt8] = [],
                        completion: @escaping @Sendable (Result<Outcome, IdempotencyError>) -> Void) {
        do throws(IdempotencyError) {
            try apply(operation, key: key, namespace: namespace).whenDurable(completion)
        } catch {
            completion(.failure(error))
        }
    }

    /// `perform` in two steps (as `Engine.apply`): the outcome at once, and
    /// whether it is durable yet — so a retry answered from a durable
    /// record, the common case, costs its caller no callback.
    public func apply(_ operation: Operation, key: [UInt8], namespace: [UInt8] = []) throws(IdempotencyError) -> AppliedOutcome {
        switch operation {
        case .begin(let fingerprint, let lease, let ttl):
            try apply(beginStep(key, namespace: namespace, fingerprint: fingerprint, lease: lease, ttl: ttl), as: Outcome.begin)
        case .complete(let token, let response, let ttl):
            try apply(completeStep(key, namespace: namespace, token: token, response: response, ttl: ttl), as: Outcome.complete)
        case .abort(let token, let keep):
            try apply(abortStep(key, namespace: namespace, token: token, keep: keep), as: Outcome.owner)
        case .extend(let token, let lease):
            try apply(extendStep(key, namespace: namespace, token: token, lease: lease), as: Outcome.owner)
        case .checkpoint(let token, let recoveryPoint):
            try apply(checkpointStep(key, namespace: namespace, token: token, recoveryPoint: recoveryPoint), as: Outcome.owner)
        case .forget(let force):
            try apply(forgetStep(key, namespace: namespace, force: force), as: Outcome.forget)
        }
    }

    /// An operation decided and applied, durable or on its way to it.
    ///
    /// Invariant: its metric is counted once, when it is durable — at
    /// `apply` when it already is, else by `whenDurable` (which a caller
    /// of a non-durable outcome calls to learn when to report it).
    public struct AppliedOutcome: Sendable {
        public var outcome: Outcome { update.result }
        public var isDurable: Bool { update.isDurable }
        fileprivate let update: AppliedUpdate<Outcome>
        fileprivate let counter: IdempotencyMetrics.Counter?
        fileprivate let metrics: IdempotencyMetrics

        /// Calls `body` once the outcome is durable (or its log write
        /// failed): at once when it already is, otherwise on the thread
        /// that makes it durable.
        public func whenDurable(_ body: @escaping @Sendable (Result<Outcome, IdempotencyError>) -> Void) {
            let outcome = outcome
            guard !isDurable else { return body(.success(outcome)) }
            let (counter, metrics) = (counter, metrics)
            update.whenDurable { result in
                switch result {
                case .success:
                    if let counter { metrics.count(counter) }
                    body(.success(outcome))
                case .failure(let error):
                    body(.failure(.engine(error)))
                }
            }
        }
    }

    // MARK: - Each operation as one decision on the current record

    private func beginStep(_ key: [UInt8], namespace: [UInt8], fingerprint: [UInt8]?,
                           lease: Int64?, ttl: Int64?) throws(IdempotencyError) -> Step<BeginOutcome> {
        try policy.validate(key)
        if let generator = configuration.requireIssuedKeysFrom, !generator.verify(key) { throw .keyNotIssued }
        if let fingerprint, fingerprint.count > configuration.maximumFingerprintLength {
            throw .fingerprintTooLong(size: fingerprint.count, limit: configuration.maximumFingerprintLength)
        }
        let lease = try Self.checkLease(lease ?? configuration.defaultLease)
        let ttl = try Self.checkTTL(ttl ?? configuration.defaultTTL)
        return Step(engineKey: try Keyspace.engineKey(namespace: namespace, key: key), decide: { record, now in
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
        }, counter: { outcome in
            switch outcome {
            case .acquired(_, let attempt, _): attempt > 1 ? .takeover : .acquired
            case .inProgress: .inProgressConflict
            case .completed: .replayed
            case .mismatch: .mismatch
            }
        })
    }

    private func completeStep(_ key: [UInt8], namespace: [UInt8], token: OwnerToken, response: [UInt8],
                              ttl: Int64?) throws(IdempotencyError) -> Step<CompleteOutcome> {
        try policy.validate(key)
        guard response.count <= configuration.maximumPayloadSize else {
            throw .responseTooLarge(size: response.count, limit: configuration.maximumPayloadSize)
        }
        let ttl = try Self.checkTTL(ttl ?? configuration.defaultTTL)
        return Step(engineKey: try Keyspace.engineKey(namespace: namespace, key: key), decide: { record, now in
            guard var record else { return (.none, .notFound) }
            guard record.token.constantTimeEquals(token) else { return (.none, .leaseLost) }
            if record.state == .completed { return (.none, .ok) }
            record.state = .completed
            record.response = response
            record.completedAt = now
            record.leaseDeadline = 0
            record.expiresAt = now + ttl
            return (.store(record), .ok)
        }, counter: { $0 == .ok ? .completed : .leaseLost })
    }

    private func abortStep(_ key: [UInt8], namespace: [UInt8], token: OwnerToken,
                           keep: Bool) throws(IdempotencyError) -> Step<OwnerOutcome> {
        try policy.validate(key)
        return Step(engineKey: try Keyspace.engineKey(namespace: namespace, key: key), decide: { record, now in
            guard var record, record.state == .inProgress, record.token.constantTimeEquals(token) else {
                return (.none, .leaseLost)
            }
            guard keep else { return (.delete, .ok) }
            record.leaseDeadline = now
            return (.store(record), .ok)
        }, counter: { $0 == .ok ? .aborted : .leaseLost })
    }

    private func extendStep(_ key: [UInt8], namespace: [UInt8], token: OwnerToken,
                            lease: Int64) throws(IdempotencyError) -> Step<OwnerOutcome> {
        try policy.validate(key)
        let lease = try Self.checkLease(lease)
        return Step(engineKey: try Keyspace.engineKey(namespace: namespace, key: key), decide: { record, now in
            guard var record, record.state == .inProgress, record.token.constantTimeEquals(token) else {
                return (.none, .leaseLost)
            }
            record.leaseDeadline = now + lease
            record.expiresAt = max(record.expiresAt, now + lease)
            return (.store(record), .ok)
        }, counter: { $0 == .leaseLost ? .leaseLost : nil })
    }

    private func checkpointStep(_ key: [UInt8], namespace: [UInt8], token: OwnerToken,
                                recoveryPoint: [UInt8]) throws(IdempotencyError) -> Step<OwnerOutcome> {
        try policy.validate(key)
        guard recoveryPoint.count <= configuration.maximumPayloadSize else {
            throw .recoveryPointTooLarge(size: recoveryPoint.count, limit: configuration.maximumPayloadSize)
        }
        return Step(engineKey: try Keyspace.engineKey(namespace: namespace, key: key), decide: { record, _ in
            guard var record, record.state == .inProgress, record.token.constantTimeEquals(token) else {
                return (.none, .leaseLost)
            }
            record.recoveryPoint = recoveryPoint
            return (.store(record), .ok)
        }, counter: { $0 == .leaseLost ? .leaseLost : nil })
    }

    private func forgetStep(_ key: [UInt8], namespace: [UInt8], force: Bool) throws(IdempotencyError) -> Step<ForgetOutcome> {
        try policy.validate(key)
        return Step(engineKey: try Keyspace.engineKey(namespace: namespace, key: key), decide: { record, _ in
            guard let record else { return (.none, .notFound) }
            if record.state == .inProgress && !force { return (.none, .busy) }
            return (.delete, .deleted)
        }, counter: { $0 == .deleted ? .forgotten : nil })
    }

    // MARK: - The one atomic step every operation is

    enum Change {
        case none
        case store(IdempotencyRecord)
        case delete
    }

    /// An operation as a decision on the key's live record: `decide` sees
    /// the record (nil when absent or expired) and the engine clock's now,
    /// and chooses the change and the caller's outcome; `counter` names the
    /// metric the outcome counts towards.
    struct Step<R: Sendable> {
        var engineKey: [UInt8]
        var decide: (IdempotencyRecord?, Int64) throws(IdempotencyError) -> (Change, R)
        var counter: @Sendable (R) -> IdempotencyMetrics.Counter?
    }

    /// Reads the live record, lets the step decide, writes the choice — one
    /// linearizable engine update — and returns once it is durable.
    private func run<R: Sendable>(_ step: Step<R>) async throws(IdempotencyError) -> R {
        let result: R
        do {
            result = try await engine.update(step.engineKey) { stored in try mutation(step, stored) }
        } catch {
            throw Self.idempotencyError(error)
        }
        if let counter = step.counter(result) { metrics.count(counter) }
        return result
    }

    private func apply<R: Sendable>(_ step: Step<R>, as outcome: (R) -> Outcome) throws(IdempotencyError) -> AppliedOutcome {
        let update: AppliedUpdate<R>
        do {
            update = try engine.apply(step.engineKey) { stored in try mutation(step, stored) }
        } catch {
            throw Self.idempotencyError(error)
        }
        let counter = step.counter(update.result)
        if update.isDurable, let counter { metrics.count(counter) }
        return AppliedOutcome(update: update.map(outcome), counter: counter, metrics: metrics)
    }

    /// The engine's side of `step`: decodes the stored record, decides, and
    /// encodes the change. A function the update's closure calls, not a
    /// closure of its own: one returned from a function is a context
    /// allocated per operation.
    private func mutation<R>(_ step: Step<R>, _ stored: StoredValue?) throws -> (Mutation?, R) {
        let now = engine.options.clock.nowMilliseconds()
        let record = try stored.map { stored throws(IdempotencyError) in try Self.decode(stored) }
        let (change, result) = try step.decide(record, now)
        switch change {
        case .none: return (nil, result)
        case .delete: return (.delete, result)
        case .store(let record): return (.put(value: RecordCodec.encode(record), expiresAt: record.expiresAt), result)
        }
    }

    private static func idempotencyError(_ error: any Error) -> IdempotencyError {
        switch error {
        case let error as IdempotencyError: error
        case let error as EngineError: .engine(error)
        default: .corruptRecord("\(error)")
        }
    }

    private static func decode(_ stored: StoredValue) throws(IdempotencyError) -> IdempotencyRecord {
        try stored.withValue { bytes throws(IdempotencyError) in try decode(bytes) }
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer) throws(IdempotencyError) -> IdempotencyRecord {
        guard Keyspace.type(of: bytes) != .string else { throw .wrongType }
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
        ConstantTime.equals(a, b)
    }
}

/// Comparisons whose time does not depend on where the inputs differ, so a
/// caller cannot learn a secret (token, fingerprint, password digest) byte
/// by byte from response times.
public enum ConstantTime {
    /// Equal lengths and bytes; the length itself is not secret.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
