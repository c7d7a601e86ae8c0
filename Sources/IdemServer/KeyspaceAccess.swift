import IdemEngine
import Idempotency
import RESP
import Synchronization

/// A reply that ends a command early, thrown out of a decision taken
/// inside an engine update (e.g. `WRONGTYPE`).
struct ReplyError: Error {
    var reply: RESPValue
}

/// A live value read through the keyspace, with its type.
struct TypedValue {
    var type: Keyspace.ValueType
    var stored: StoredValue

    /// The string's bytes (for type `.string`).
    var string: [UInt8] { Array(Keyspace.decodeString(stored.value)) }
}

extension Invocation {
    /// Reads `keys` and builds the reply from their live values (nil for
    /// absent): on the event loop when memtables, bloom filters and the
    /// block cache can answer, otherwise — a table block must come from
    /// disk — on the blocking pool, so a slow disk never stalls the other
    /// connections of this loop.
    func withValues(of keys: [ArraySlice<UInt8>], _ body: @escaping @Sendable ([TypedValue?]) throws(ReplyError) -> RESPValue) -> CommandResult {
        let engine = server.engine
        let engineKeys = keys.map(engineKey)
        do throws(ReplyError) {
            var values: [TypedValue?] = []
            values.reserveCapacity(keys.count)
            for key in engineKeys {
                guard let value = try Self.readCached(key, from: engine) else { break }
                values.append(value)
            }
            if values.count == keys.count { return .reply(try body(values)) }
        } catch {
            return .reply(error.reply)
        }
        return offload {
            do throws(ReplyError) {
                return try body(try engineKeys.map { key throws(ReplyError) in try Self.read(key, from: engine) })
            } catch {
                return error.reply
            }
        }
    }

    /// `withValues` for one key (the common case, without the arrays).
    func withValue(of key: ArraySlice<UInt8>, _ body: @escaping @Sendable (TypedValue?) throws(ReplyError) -> RESPValue) -> CommandResult {
        let engine = server.engine
        let engineKey = engineKey(key)
        do throws(ReplyError) {
            if let value = try Self.readCached(engineKey, from: engine) { return .reply(try body(value)) }
        } catch {
            return .reply(error.reply)
        }
        return offload {
            do throws(ReplyError) {
                return try body(try Self.read(engineKey, from: engine))
            } catch {
                return error.reply
            }
        }
    }

    /// The live value of `key` if answering needs no disk read; nil if it does.
    private static func readCached(_ key: [UInt8], from engine: Engine) throws(ReplyError) -> TypedValue?? {
        let cached: Engine.CachedRead
        do throws(EngineError) { cached = try engine.get(ifCached: key) } catch { throw ReplyError(reply: .engineFailure(error)) }
        guard case .value(let stored) = cached else { return nil }
        return .some(try stored.map { stored throws(ReplyError) in try typed(stored) })
    }

    private static func read(_ key: [UInt8], from engine: Engine) throws(ReplyError) -> TypedValue? {
        let stored: StoredValue?
        do throws(EngineError) { stored = try engine.get(key) } catch { throw ReplyError(reply: .engineFailure(error)) }
        return try stored.map { stored throws(ReplyError) in try typed(stored) }
    }

    static func typed(_ stored: StoredValue) throws(ReplyError) -> TypedValue {
        guard let type = Keyspace.type(of: stored.value) else {
            throw ReplyError(reply: .error("ERR stored value has an unknown type byte 0x\(String(stored.value.first ?? 0, radix: 16))"))
        }
        return TypedValue(type: type, stored: stored)
    }

    /// Reads the live value, lets `decide` choose the change and the
    /// result, and applies it — one linearizable engine update — replying
    /// `reply(result)` once the change is durable (at once when it already
    /// is, or nothing changed). A failure carries the reply to send
    /// (`ReplyError`) or the engine's error.
    ///
    /// The reply is formatted at once, before the change is durable: only
    /// sending it waits. So a reply ready now — the retried `SET NX` of a
    /// durable key — needs no `PendingReply` and no callback.
    func update<R>(_ key: ArraySlice<UInt8>, _ decide: (TypedValue?) throws(ReplyError) -> (Mutation?, R),
                   reply: (R) -> RESPValue) -> CommandResult {
        let applied: AppliedUpdate<R>
        do {
            applied = try server.engine.apply(engineKey(key)) { stored in
                try decide(try stored.map { stored throws(ReplyError) in try Self.typed(stored) })
            }
        } catch {
            return .reply(Self.replyForError(error))
        }
        let value = reply(applied.result)
        guard !applied.isDurable else { return .reply(value) }
        let pending = PendingReply()
        applied.whenDurable { outcome in
            switch outcome {
            case .success: pending.complete(value)
            case .failure(let error): pending.complete(.engineFailure(error))
            }
        }
        return pending.result
    }

    /// `update` with the raw outcome, for commands that combine several.
    func update<R: Sendable>(_ key: ArraySlice<UInt8>, _ decide: (TypedValue?) throws(ReplyError) -> (Mutation?, R),
                             completion: @escaping @Sendable (Result<R, any Error>) -> Void) {
        server.engine.update(engineKey(key), { stored in
            try decide(try stored.map { stored throws(ReplyError) in try Self.typed(stored) })
        }, completion: completion)
    }

    @Sendable static func replyForError(_ error: any Error) -> RESPValue {
        switch error {
        case let error as ReplyError: error.reply
        case let error as EngineError: .engineFailure(error)
        default: .error("ERR \(error)")
        }
    }
}
