import IdemEngine
import Idempotency
import RESP

/// IDEM.*: the idempotency protocol (docs/PROTOCOL.md).
enum IdempotencyCommands {
    static let table: [Command] = [
        Command(name: "idem.begin", arity: -2, flags: [.write], keys: (1, 1, 1),
                summary: "IDEM.BEGIN key [FP fingerprint] [LEASE ms] [TTL ms]", run: begin),
        Command(name: "idem.complete", arity: -4, flags: [.write], keys: (1, 1, 1),
                summary: "IDEM.COMPLETE key token response [TTL ms]", run: complete),
        Command(name: "idem.abort", arity: -3, flags: [.write], keys: (1, 1, 1), summary: "IDEM.ABORT key token [KEEP]",
                run: abort),
        Command(name: "idem.extend", arity: 4, flags: [.write], keys: (1, 1, 1), summary: "IDEM.EXTEND key token lease-ms",
                run: extend),
        Command(name: "idem.checkpoint", arity: 4, flags: [.write], keys: (1, 1, 1),
                summary: "IDEM.CHECKPOINT key token recovery-point", run: checkpoint),
        Command(name: "idem.get", arity: 2, flags: [.fast], keys: (1, 1, 1), summary: "IDEM.GET key: the record, or nil.",
                run: get),
        Command(name: "idem.forget", arity: -2, flags: [.write], keys: (1, 1, 1), summary: "IDEM.FORGET key [FORCE]",
                run: forget),
        Command(name: "idem.keygen", arity: -1, flags: [.fast], keys: (0, 0, 0),
                summary: "IDEM.KEYGEN [UUID4 | UUID7 | HYBRID prefix]", run: keygen),
        Command(name: "idem.verify", arity: 2, flags: [.fast], keys: (0, 0, 0),
                summary: "IDEM.VERIFY key: 1 if this server issued the HYBRID key.", run: verify),
    ]

    static func begin(_ call: Invocation) -> CommandResult {
        var fingerprint: [UInt8]?
        var lease: Int64?
        var ttl: Int64?
        var index = 2
        while index < call.argumentCount {
            guard index + 1 < call.argumentCount else { return .reply(.syntaxError) }
            switch call.option(index) {
            case "FP": fingerprint = call[index + 1]
            case "LEASE":
                guard let value = call.integer(index + 1) else { return .reply(.notAnInteger) }
                lease = value
            case "TTL":
                guard let value = call.integer(index + 1) else { return .reply(.notAnInteger) }
                ttl = value
            default:
                return .reply(.syntaxError)
            }
            index += 2
        }
        return perform(call, .begin(fingerprint: fingerprint, lease: lease, ttl: ttl))
    }

    static func complete(_ call: Invocation) -> CommandResult {
        guard let token = token(call[2]) else { return .reply(invalidToken) }
        var ttl: Int64?
        if call.argumentCount > 4 {
            guard call.argumentCount == 6, call.option(4) == "TTL" else { return .reply(.syntaxError) }
            guard let value = call.integer(5) else { return .reply(.notAnInteger) }
            ttl = value
        }
        return perform(call, .complete(token: token, response: call[3], ttl: ttl))
    }

    static func abort(_ call: Invocation) -> CommandResult {
        guard let token = token(call[2]) else { return .reply(invalidToken) }
        var keep = false
        if call.argumentCount > 3 {
            guard call.argumentCount == 4, call.option(3) == "KEEP" else { return .reply(.syntaxError) }
            keep = true
        }
        return perform(call, .abort(token: token, keep: keep))
    }

    static func extend(_ call: Invocation) -> CommandResult {
        guard let token = token(call[2]) else { return .reply(invalidToken) }
        guard let lease = call.integer(3) else { return .reply(.notAnInteger) }
        return perform(call, .extend(token: token, lease: lease))
    }

    static func checkpoint(_ call: Invocation) -> CommandResult {
        guard let token = token(call[2]) else { return .reply(invalidToken) }
        return perform(call, .checkpoint(token: token, recoveryPoint: call[3]))
    }

    static func forget(_ call: Invocation) -> CommandResult {
        var force = false
        if call.argumentCount > 2 {
            guard call.argumentCount == 3, call.option(2) == "FORCE" else { return .reply(.syntaxError) }
            force = true
        }
        call.server.logger.info("forget requested", metadata: [
            "audit": "forget", "user": "\(call.session.user?.name ?? "")", "key": "\(String(decoding: call[1].prefix(255), as: UTF8.self))",
            "force": "\(force)", "client_id": "\(call.session.info.id)",
        ])
        return perform(call, .forget(force: force))
    }

    static func get(_ call: Invocation) -> CommandResult {
        do {
            try call.server.store.validate(key: call[1])
        } catch {
            return .reply(.idempotencyFailure(error))
        }
        let server = call.server
        return call.withValue(of: call.argument(1)) { value throws(ReplyError) in
            guard let current = value else { return .null }
            guard current.type == .idempotencyRecord else { return .wrongType }
            let record: IdempotencyRecord
            do throws(IdempotencyError) { record = try IdempotencyStore.record(from: current.stored) } catch { return .idempotencyFailure(error) }
            let now = server.now
            return .map([
                (.bulk("state"), .bulk(record.state == .completed ? "completed" : "in_progress")),
                (.bulk("fingerprint"), .bulkString(record.fingerprint)),
                (.bulk("attempt"), .integer(Int64(record.attempt))),
                (.bulk("lease_ms"), .integer(record.state == .completed ? -1 : record.leaseRemaining(at: now))),
                (.bulk("ttl_ms"), .integer(max(0, record.expiresAt - now))),
                (.bulk("recovery_point"), .bulkString(record.recoveryPoint)),
                (.bulk("response"), .bulkString(record.response)),
            ])
        }
    }

    static func keygen(_ call: Invocation) -> CommandResult {
        let kind = call.argumentCount > 1 ? call.option(1) : "UUID7"
        switch (kind, call.argumentCount) {
        case ("UUID4", 2): return .reply(.bulk(KeyGenerator.uuid4()))
        case ("UUID7", 1), ("UUID7", 2): return .reply(.bulk(KeyGenerator.uuid7(milliseconds: call.server.now)))
        case ("HYBRID", 3):
            guard let generator = call.server.configuration.keyGenerator else { return .reply(noSecret) }
            do {
                return .reply(.bulk(try generator.hybrid(prefix: String(decoding: call[2], as: UTF8.self))))
            } catch {
                return .reply(.error("ERR \(error)"))
            }
        default:
            return .reply(.syntaxError)
        }
    }

    static func verify(_ call: Invocation) -> CommandResult {
        guard let generator = call.server.configuration.keyGenerator else { return .reply(noSecret) }
        return .reply(.integer(generator.verify(call[1]) ? 1 : 0))
    }

    // The outcome words of `IDEM.BEGIN`, encoded once.
    private static let acquired = RESPValue.bulk("acquired")
    private static let inProgress = RESPValue.bulk("in_progress")
    private static let completed = RESPValue.bulk("completed")

    static let invalidToken = RESPValue.error("ERR invalid token: expected the 32 hex digits IDEM.BEGIN returned")
    static let noSecret = RESPValue.error("ERR HYBRID keys need a key secret: start the server with --key-secret-file or IDEM_KEY_SECRET")

    private static func token(_ bytes: [UInt8]) -> OwnerToken? {
        OwnerToken(hex: String(decoding: bytes, as: UTF8.self))
    }

    /// Runs one store operation without blocking the loop; the reply is
    /// sent once its change is durable (formatted at once, as `update`'s).
    private static func perform(_ call: Invocation, _ operation: IdempotencyStore.Operation) -> CommandResult {
        let applied: IdempotencyStore.AppliedOutcome
        do {
            applied = try call.server.store.apply(operation, key: call[1], namespace: call.session.namespace)
        } catch {
            return .reply(.idempotencyFailure(error))
        }
        let value = reply(for: applied.outcome)
        guard !applied.isDurable else { return .reply(value) }
        let pending = PendingReply()
        applied.whenDurable { result in
            switch result {
            case .success: pending.complete(value)
            case .failure(let error): pending.complete(.idempotencyFailure(error))
            }
        }
        return pending.result
    }

    static func reply(for outcome: IdempotencyStore.Outcome) -> RESPValue {
        switch outcome {
        case .begin(.acquired(let token, let attempt, let recoveryPoint)):
            .array([acquired, .bulkString(token.hexDigits), .integer(Int64(attempt)), .bulkString(recoveryPoint)])
        case .begin(.inProgress(let retryAfter)):
            .array([inProgress, .integer(retryAfter)])
        case .begin(.completed(let response)):
            .array([completed, .bulkString(response)])
        case .begin(.mismatch):
            .error("MISMATCH the key was used with a different request fingerprint")
        case .complete(.ok), .owner(.ok):
            .ok
        case .complete(.leaseLost), .owner(.leaseLost):
            .leaseLost
        case .complete(.notFound):
            .error("NOTFOUND no idempotency record for this key (never begun, forgotten or expired)")
        case .forget(.deleted):
            .integer(1)
        case .forget(.notFound):
            .integer(0)
        case .forget(.busy):
            .error("BUSY the key's attempt is in progress; IDEM.FORGET key FORCE forgets it anyway")
        }
    }
}
