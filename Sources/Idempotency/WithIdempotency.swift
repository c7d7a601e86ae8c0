import IdemEngine

/// What `withIdempotency` does with the record when the operation throws.
public enum FailurePolicy: Sendable {
    /// Delete the record: a retry runs the operation afresh (the default).
    case delete
    /// Release the lease but keep the record and its recovery point: a retry
    /// takes over and resumes.
    case keep
    /// Complete with the error, encoded by this closure: every retry
    /// replays the failure instead of running again.
    case storeError(@Sendable (any Error) -> [UInt8])
}

/// One run of an idempotent operation, handed to the operation's body.
public struct IdempotentAttempt: Sendable {
    public let key: [UInt8]
    public let token: OwnerToken
    /// 1 for the first attempt; more after takeovers of crashed attempts.
    public let number: UInt32
    /// What an earlier attempt saved with `checkpoint` before it stopped.
    public let recoveryPoint: [UInt8]?
    let store: IdempotencyStore
    let namespace: [UInt8]

    /// Saves progress for the attempt that would take over if this one dies.
    public func checkpoint(_ recoveryPoint: [UInt8]) async throws(IdempotencyError) {
        guard try await store.checkpoint(key, namespace: namespace, token: token, recoveryPoint: recoveryPoint) == .ok else {
            throw .leaseLost
        }
    }
}

/// The response, and whether it was replayed from an earlier run.
public struct IdempotentResult: Sendable, Equatable {
    public var response: [UInt8]
    public var replayed: Bool
}

extension IdempotencyStore {
    /// Runs `body` at most once per `key` (until the key's TTL passes),
    /// returning its response — or, for every later call, the stored one.
    ///
    /// - acquires the key (`begin`); a live attempt elsewhere throws
    ///   `.inProgress(retryAfterMilliseconds:)`, a different fingerprint
    ///   `.fingerprintMismatch`;
    /// - keeps the lease alive while `body` runs (extends it every third of
    ///   `lease`, on `heartbeatClock`);
    /// - completes with the response, or applies `onFailure` if `body`
    ///   throws — including when the task is cancelled;
    /// - throws `.leaseLost` if another attempt took over meanwhile (the
    ///   side effect may then have run twice: the lease was too short).
    public func withIdempotency(
        key: [UInt8], namespace: [UInt8] = [], fingerprint: [UInt8]? = nil,
        lease: Int64? = nil, ttl: Int64? = nil, onFailure: FailurePolicy = .delete,
        heartbeatClock: ContinuousClock = ContinuousClock(),
        _ body: @escaping @Sendable (IdempotentAttempt) async throws -> [UInt8]
    ) async throws -> IdempotentResult {
        let leaseMilliseconds = lease ?? configuration.defaultLease
        let outcome = try await begin(key, namespace: namespace, fingerprint: fingerprint, lease: leaseMilliseconds, ttl: ttl)
        let attempt: IdempotentAttempt
        switch outcome {
        case .completed(let response):
            return IdempotentResult(response: response, replayed: true)
        case .inProgress(let retryAfter):
            throw IdempotencyError.inProgress(retryAfterMilliseconds: retryAfter)
        case .mismatch:
            throw IdempotencyError.fingerprintMismatch
        case .acquired(let token, let number, let recoveryPoint):
            attempt = IdempotentAttempt(key: key, token: token, number: number, recoveryPoint: recoveryPoint,
                                        store: self, namespace: namespace)
        }

        let result: Result<[UInt8], any Error> = await withTaskGroup(of: Result<[UInt8], any Error>?.self) { group in
            group.addTask {
                do { return .success(try await body(attempt)) } catch { return .failure(error) }
            }
            group.addTask { [self] in
                // Heartbeat: extend well before the lease lapses; stop when
                // the body is done (this task is cancelled) or the lease is lost.
                let interval = Duration.milliseconds(max(1, leaseMilliseconds / 3))
                while !Task.isCancelled {
                    do { try await Task.sleep(for: interval, clock: heartbeatClock) } catch { return nil }
                    let extended = try? await extend(key, namespace: namespace, token: attempt.token, lease: leaseMilliseconds)
                    if extended == .leaseLost { return nil }
                }
                return nil
            }
            var bodyResult: Result<[UInt8], any Error> = .failure(CancellationError())
            for await finished in group {
                if let finished {
                    bodyResult = finished
                    group.cancelAll()
                }
            }
            return bodyResult
        }

        switch result {
        case .success(let response):
            switch try await complete(key, namespace: namespace, token: attempt.token, response: response, ttl: ttl) {
            case .ok: return IdempotentResult(response: response, replayed: false)
            case .leaseLost, .notFound: throw IdempotencyError.leaseLost
            }
        case .failure(let error):
            switch onFailure {
            case .delete: _ = try? await abort(key, namespace: namespace, token: attempt.token, keep: false)
            case .keep: _ = try? await abort(key, namespace: namespace, token: attempt.token, keep: true)
            case .storeError(let encode):
                _ = try? await complete(key, namespace: namespace, token: attempt.token, response: encode(error), ttl: ttl)
            }
            throw error
        }
    }
}
