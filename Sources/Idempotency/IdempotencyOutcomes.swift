import IdemEngine

/// The answer to `begin`.
public enum BeginOutcome: Sendable, Equatable {
    /// The caller now owns the attempt: run the side effect, then complete
    /// (or abort) with `token`. `recoveryPoint` is what a previous attempt
    /// checkpointed before it lost its lease.
    case acquired(token: OwnerToken, attempt: UInt32, recoveryPoint: [UInt8]?)
    /// Another attempt holds a live lease; try again after this long (HTTP 409).
    case inProgress(retryAfterMilliseconds: Int64)
    /// Done before: replay this response (and mark the reply as a replay).
    case completed(response: [UInt8])
    /// The key was used with a different request fingerprint (HTTP 422).
    case mismatch
}

/// The answer to `complete`.
public enum CompleteOutcome: Sendable, Equatable {
    case ok
    /// The token is not the current owner's (fenced by a takeover, or the
    /// record was completed by someone else); nothing changed.
    case leaseLost
    case notFound
}

/// The answer to `abort`, `extend` and `checkpoint`.
public enum OwnerOutcome: Sendable, Equatable {
    case ok
    /// The token does not own a live attempt on this key; nothing changed.
    case leaseLost
}

/// The answer to `forget`.
public enum ForgetOutcome: Sendable, Equatable {
    case deleted
    case notFound
    /// The record is in progress and `force` was not given.
    case busy
}

/// Every way an idempotency operation can be refused, each with its reason.
public enum IdempotencyError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidKey(String)
    case invalidNamespace(String)
    /// The key holds another type of value (a plain string).
    case wrongType
    case fingerprintTooLong(size: Int, limit: Int)
    case responseTooLarge(size: Int, limit: Int)
    case recoveryPointTooLarge(size: Int, limit: Int)
    case invalidLease(milliseconds: Int64)
    case invalidTTL(milliseconds: Int64)
    /// `requireIssuedKeys` is on and the key was not made by this server's generator.
    case keyNotIssued
    /// The stored record does not decode (a bug or tampering); nothing was changed.
    case corruptRecord(String)
    case engine(EngineError)
    // Outcomes `withIdempotency` turns into errors:
    case inProgress(retryAfterMilliseconds: Int64)
    case fingerprintMismatch
    case leaseLost

    public var description: String {
        switch self {
        case .invalidKey(let reason): "invalid idempotency key: \(reason)"
        case .invalidNamespace(let reason): "invalid namespace: \(reason)"
        case .wrongType: "the key holds a value of another type"
        case .fingerprintTooLong(let size, let limit): "fingerprint is \(size) bytes, the limit is \(limit)"
        case .responseTooLarge(let size, let limit): "response is \(size) bytes, the limit is \(limit)"
        case .recoveryPointTooLarge(let size, let limit): "recovery point is \(size) bytes, the limit is \(limit)"
        case .invalidLease(let value): "lease must be between 1 ms and 1 day, got \(value) ms"
        case .invalidTTL(let value): "ttl must be between 1 ms and 10 years, got \(value) ms"
        case .keyNotIssued: "invalid idempotency key: not issued by this server"
        case .corruptRecord(let detail): "stored idempotency record is corrupt: \(detail)"
        case .engine(let error): "\(error)"
        case .inProgress(let retryAfter): "another attempt is in progress; retry after \(retryAfter) ms"
        case .fingerprintMismatch: "the key was used with a different request"
        case .leaseLost: "the lease was lost to another attempt"
        }
    }
}
