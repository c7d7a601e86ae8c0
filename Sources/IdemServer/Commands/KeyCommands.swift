import IdemEngine
import Idempotency
import RESP
import Synchronization

/// Commands on keys of any type: DEL, UNLINK, EXISTS, TYPE, the TTL family,
/// the EXPIRE family and PERSIST.
///
/// EXPIRE and PERSIST refuse idempotency records (WRONGTYPE): a record's
/// lifetime is part of its state (IDEM.COMPLETE's TTL, a lease), and
/// changing it from outside would let a retry run the side effect again.
enum KeyCommands {
    static let table: [Command] = [
        Command(name: "del", arity: -2, flags: [.write], keys: (1, -1, 1), summary: "Deletes keys; the number deleted.",
                run: delete),
        Command(name: "unlink", arity: -2, flags: [.write], keys: (1, -1, 1), summary: "Same as DEL.", run: delete),
        Command(name: "exists", arity: -2, flags: [.fast], keys: (1, -1, 1),
                summary: "How many of the keys exist (repeats counted).", run: exists),
        Command(name: "type", arity: 2, flags: [.fast], keys: (1, 1, 1),
                summary: "string, idempotency, or none.", run: type),
        Command(name: "ttl", arity: 2, flags: [.fast], keys: (1, 1, 1), summary: "Seconds to live; -1 none, -2 no key.",
                run: { timeToLive($0, unit: 1000, absolute: false) }),
        Command(name: "pttl", arity: 2, flags: [.fast], keys: (1, 1, 1), summary: "Milliseconds to live; -1 none, -2 no key.",
                run: { timeToLive($0, unit: 1, absolute: false) }),
        Command(name: "expiretime", arity: 2, flags: [.fast], keys: (1, 1, 1), summary: "Expiry as a Unix time in seconds.",
                run: { timeToLive($0, unit: 1000, absolute: true) }),
        Command(name: "pexpiretime", arity: 2, flags: [.fast], keys: (1, 1, 1),
                summary: "Expiry as a Unix time in milliseconds.", run: { timeToLive($0, unit: 1, absolute: true) }),
        Command(name: "expire", arity: -3, flags: [.write], keys: (1, 1, 1), summary: "EXPIRE key seconds [NX|XX|GT|LT]",
                run: { expire($0, unit: 1000, absolute: false, name: "expire") }),
        Command(name: "pexpire", arity: -3, flags: [.write], keys: (1, 1, 1), summary: "PEXPIRE key ms [NX|XX|GT|LT]",
                run: { expire($0, unit: 1, absolute: false, name: "pexpire") }),
        Command(name: "expireat", arity: -3, flags: [.write], keys: (1, 1, 1),
                summary: "EXPIREAT key unix-seconds [NX|XX|GT|LT]",
                run: { expire($0, unit: 1000, absolute: true, name: "expireat") }),
        Command(name: "pexpireat", arity: -3, flags: [.write], keys: (1, 1, 1),
                summary: "PEXPIREAT key unix-ms [NX|XX|GT|LT]",
                run: { expire($0, unit: 1, absolute: true, name: "pexpireat") }),
        Command(name: "persist", arity: 2, flags: [.write], keys: (1, 1, 1), summary: "Removes the expiry; 1 if removed.",
                run: persist),
    ]

    static func delete(_ call: Invocation) -> CommandResult {
        let pending = PendingReply()
        let tally = Mutex<(remaining: Int, deleted: Int64, failure: (any Error)?)>((call.argumentCount - 1, 0, nil))
        for index in 1..<call.argumentCount {
            call.update(call.argument(index), { current throws(ReplyError) -> (Mutation?, Int64) in
                current == nil ? (nil, 0) : (.delete, 1)
            }, completion: { result in
                let finished: (Int64, (any Error)?)? = tally.withLock { tally in
                    switch result {
                    case .success(let deleted): tally.deleted += deleted
                    case .failure(let error): tally.failure = tally.failure ?? error
                    }
                    tally.remaining -= 1
                    return tally.remaining == 0 ? (tally.deleted, tally.failure) : nil
                }
                guard let (deleted, failure) = finished else { return }
                pending.complete(failure.map(Invocation.replyForError) ?? .integer(deleted))
            })
        }
        return pending.result
    }

    static func exists(_ call: Invocation) -> CommandResult {
        call.withValues(of: (1..<call.argumentCount).map(call.argument)) { values throws(ReplyError) in
            .integer(Int64(values.count { $0 != nil }))
        }
    }

    static func type(_ call: Invocation) -> CommandResult {
        call.withValue(of: call.argument(1)) { value throws(ReplyError) in
            .simpleString(value?.type.name ?? "none")
        }
    }

    static func timeToLive(_ call: Invocation, unit: Int64, absolute: Bool) -> CommandResult {
        let server = call.server
        return call.withValue(of: call.argument(1)) { value throws(ReplyError) in
            guard let current = value else { return .integer(-2) }
            guard let expiresAt = current.stored.expiresAt else { return .integer(-1) }
            if absolute { return .integer(expiresAt / unit) }
            let remaining = max(0, expiresAt - server.now)
            // Redis rounds TTL to the nearest second.
            return .integer(unit == 1 ? remaining : (remaining + 500) / 1000)
        }
    }

    static func expire(_ call: Invocation, unit: Int64, absolute: Bool, name: String) -> CommandResult {
        guard let amount = call.integer(2) else { return .reply(.notAnInteger) }
        var onlyIfNone = false, onlyIfSome = false, onlyIfGreater = false, onlyIfLess = false
        for index in 3..<max(3, call.argumentCount) {
            switch call.option(index) {
            case "NX": onlyIfNone = true
            case "XX": onlyIfSome = true
            case "GT": onlyIfGreater = true
            case "LT": onlyIfLess = true
            default: return .reply(.error("ERR Unsupported option \(String(decoding: call[index].prefix(64), as: UTF8.self))"))
            }
        }
        if onlyIfNone && (onlyIfSome || onlyIfGreater || onlyIfLess) {
            return .reply(.error("ERR NX and XX, GT or LT options at the same time are not compatible"))
        }
        if onlyIfGreater && onlyIfLess {
            return .reply(.error("ERR GT and LT options at the same time are not compatible"))
        }
        let now = call.now
        let (scaled, overflow) = amount.multipliedReportingOverflow(by: unit)
        let (deadline, overflow2) = absolute ? (scaled, false) : scaled.addingReportingOverflow(now)
        guard !overflow && !overflow2 else { return .reply(.invalidExpireTime(name)) }
        return call.update(call.argument(1), { current throws(ReplyError) -> (Mutation?, Int64) in
            guard let current else { return (nil, 0) }
            guard current.type == .string else { throw ReplyError(reply: .wrongType) }
            let existing = current.stored.expiresAt
            if onlyIfNone && existing != nil { return (nil, 0) }
            if onlyIfSome && existing == nil { return (nil, 0) }
            // A key without expiry counts as one that lives forever.
            if onlyIfGreater && (existing == nil || deadline <= existing!) { return (nil, 0) }
            if onlyIfLess, let existing, deadline >= existing { return (nil, 0) }
            if deadline <= now { return (.delete, 1) }
            return (.put(value: current.stored.value, expiresAt: deadline), 1)
        }, reply: { .integer($0) })
    }

    static func persist(_ call: Invocation) -> CommandResult {
        return call.update(call.argument(1), { current throws(ReplyError) -> (Mutation?, Int64) in
            guard let current, current.stored.expiresAt != nil else { return (nil, 0) }
            guard current.type == .string else { throw ReplyError(reply: .wrongType) }
            return (.put(value: current.stored.value, expiresAt: nil), 1)
        }, reply: { .integer($0) })
    }
}
