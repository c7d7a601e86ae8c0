import IdemEngine
import Idempotency
import RESP

/// SET and its variants, GET, GETDEL, MGET: plain string values.
///
/// Unlike Redis, SET refuses (WRONGTYPE) to overwrite an idempotency
/// record: a record stands for a side effect that may be running, and only
/// IDEM.FORGET (or DEL) removes it deliberately.
enum StringCommands {
    static let table: [Command] = [
        Command(name: "set", arity: -3, flags: [.write], keys: (1, 1, 1),
                summary: "SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]", run: set),
        Command(name: "setnx", arity: 3, flags: [.write], keys: (1, 1, 1), summary: "Sets the key if absent; 1 if set.",
                run: setnx),
        Command(name: "setex", arity: 4, flags: [.write], keys: (1, 1, 1), summary: "SETEX key seconds value",
                run: { setWithExpiry($0, unit: 1000, name: "setex") }),
        Command(name: "psetex", arity: 4, flags: [.write], keys: (1, 1, 1), summary: "PSETEX key milliseconds value",
                run: { setWithExpiry($0, unit: 1, name: "psetex") }),
        Command(name: "get", arity: 2, flags: [.fast], keys: (1, 1, 1), summary: "The string value of the key, or nil.",
                run: get),
        Command(name: "getdel", arity: 2, flags: [.write], keys: (1, 1, 1), summary: "Returns the value and deletes the key.",
                run: getdel),
        Command(name: "mget", arity: -2, flags: [.fast], keys: (1, -1, 1),
                summary: "The values of the keys (nil for absent or non-string keys).", run: mget),
    ]

    private enum Condition { case always, ifAbsent, ifPresent }
    private enum Expiry { case none, keep, at(Int64) }

    static func set(_ call: Invocation) -> CommandResult {
        var condition = Condition.always
        var returnOld = false
        var expiry = Expiry.none
        var sawExpiry = false
        var index = 3
        while index < call.argumentCount {
            let option = call.option(index)
            switch option {
            case "NX" where condition == .always: condition = .ifAbsent
            case "XX" where condition == .always: condition = .ifPresent
            case "GET" where !returnOld: returnOld = true
            case "KEEPTTL" where !sawExpiry:
                sawExpiry = true
                expiry = .keep
            case "EX", "PX", "EXAT", "PXAT":
                // (A `where` clause would bind to the last pattern only.)
                guard !sawExpiry, index + 1 < call.argumentCount else { return .reply(.syntaxError) }
                sawExpiry = true
                index += 1
                guard let amount = call.integer(index) else { return .reply(.notAnInteger) }
                guard let deadline = deadline(amount, option: option, now: call.now) else {
                    return .reply(.invalidExpireTime("set"))
                }
                expiry = .at(deadline)
            default:
                return .reply(.syntaxError)
            }
            index += 1
        }
        // The stored value is built only by a decision to write it: a
        // `SET NX` on a present key (a retry) allocates nothing for it.
        let value = call.argument(2)
        return call.update(call.argument(1), { current throws(ReplyError) -> (Mutation?, RESPValue) in
            if let current, current.type != .string { throw ReplyError(reply: .wrongType) }
            let old: RESPValue = returnOld ? .bulkString(current?.string) : .bulkString(nil)
            switch condition {
            case .ifAbsent where current != nil, .ifPresent where current == nil:
                return (nil, old)
            default:
                break
            }
            let expiresAt: Int64? = switch expiry {
            case .none: nil
            case .keep: current?.stored.expiresAt
            case .at(let deadline): deadline
            }
            return (.put(value: Keyspace.encodeString(value), expiresAt: expiresAt), returnOld ? old : .ok)
        }, reply: { $0 })
    }

    /// The absolute expiry (ms) an EX/PX/EXAT/PXAT amount names; nil when
    /// Redis calls it invalid (not positive, or overflowing).
    static func deadline(_ amount: Int64, option: String, now: Int64) -> Int64? {
        guard amount > 0 else { return nil }
        switch option {
        case "EX":
            let (milliseconds, overflow) = amount.multipliedReportingOverflow(by: 1000)
            guard !overflow else { return nil }
            let (sum, overflow2) = milliseconds.addingReportingOverflow(now)
            return overflow2 ? nil : sum
        case "PX":
            let (sum, overflow) = amount.addingReportingOverflow(now)
            return overflow ? nil : sum
        case "EXAT":
            let (milliseconds, overflow) = amount.multipliedReportingOverflow(by: 1000)
            return overflow ? nil : milliseconds
        default:
            return amount
        }
    }

    static func setnx(_ call: Invocation) -> CommandResult {
        let value = call.argument(2)
        return call.update(call.argument(1), { current throws(ReplyError) -> (Mutation?, RESPValue) in
            if current != nil { return (nil, .integer(0)) }
            return (.put(value: Keyspace.encodeString(value), expiresAt: nil), .integer(1))
        }, reply: { $0 })
    }

    static func setWithExpiry(_ call: Invocation, unit: Int64, name: String) -> CommandResult {
        guard let amount = call.integer(2) else { return .reply(.notAnInteger) }
        guard let deadline = deadline(amount, option: unit == 1000 ? "EX" : "PX", now: call.now) else {
            return .reply(.invalidExpireTime(name))
        }
        let value = Keyspace.encodeString(call.argument(3))
        return call.update(call.argument(1), { current throws(ReplyError) -> (Mutation?, RESPValue) in
            if let current, current.type != .string { throw ReplyError(reply: .wrongType) }
            return (.put(value: value, expiresAt: deadline), .ok)
        }, reply: { $0 })
    }

    static func get(_ call: Invocation) -> CommandResult {
        let metrics = call.session.metrics
        return call.withValue(of: call.argument(1)) { value throws(ReplyError) in
            guard let current = value else {
                metrics.add(.keyspaceMisses)
                return .bulkString(nil)
            }
            guard current.type == .string else { return .wrongType }
            metrics.add(.keyspaceHits)
            return .bulkString(current.string)
        }
    }

    static func getdel(_ call: Invocation) -> CommandResult {
        return call.update(call.argument(1), { current throws(ReplyError) -> (Mutation?, RESPValue) in
            guard let current else { return (nil, .bulkString(nil)) }
            guard current.type == .string else { throw ReplyError(reply: .wrongType) }
            return (.delete, .bulkString(current.string))
        }, reply: { $0 })
    }

    static func mget(_ call: Invocation) -> CommandResult {
        call.withValues(of: (1..<call.argumentCount).map(call.argument)) { values throws(ReplyError) in
            .array(values.map { value in value.flatMap { $0.type == .string ? .bulkString($0.string) : nil } ?? .bulkString(nil) })
        }
    }
}
