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
    var string: [UInt8] { Keyspace.decodeString(stored) }
}

extension Invocation {
    /// Reads `keys` and builds the reply from their live values (nil for
    /// absent): on the event loop when memtables, bloom filters and the
    /// block cache can answer, otherwise — a table block must come from
    /// disk — on the blocking pool, so a slow disk never stalls the other
    /// connections of this loop.
    func withValues(of keys: [ArraySlice<UInt8>], _ body: @escaping @Sendable ([TypedValue?]) throws(ReplyError) -> RESPValue) -> CommandResult {
        let engine = server.engine
        do throws(ReplyError) {
            var values: [TypedValue?] = []
            values.reserveCapacity(keys.count)
            for key in keys {
                guard let value = try readCached(key) else { break }
                values.append(value)
            }
            if values.count == keys.count { return .reply(try body(values)) }
        } catch {
            return .reply(error.reply)
        }
        let engineKeys = keys.map(engineKey)
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
        do throws(ReplyError) {
            if let value = try readCached(key) { return .reply(try body(value)) }
        } catch {
            return .reply(error.reply)
        }
        let engine = server.engine
        let engineKey = engineKey(key)
        return offload {
            do throws(ReplyError) {
                return try body(try Self.read(engineKey, from: engine))
            } catch {
                return error.reply
            }
        }
    }

    /// The live value of `key` if answering needs no disk read; nil if it
    /// does. The engine key is built on the stack: only a read handed to
    /// the blocking pool needs it as an array of its own.
    private func readCached(_ key: ArraySlice<UInt8>) throws(ReplyError) -> TypedValue?? {
        let engine = server.engine
        var cached: Result<Engine.CachedRead, EngineError> = .success(.needsDiskRead)
        key.withUnsafeBytes { key in
            // Namespaces are at most 255 bytes (checked when users load), so the key is always built.
            _ = Keyspace.withEngineKey(namespace: session.namespace, key: key) { engineKey in
                cached = Result { () throws(EngineError) in try engine.get(ifCached: engineKey) }
            }
        }
        let read: Engine.CachedRead
        do throws(EngineError) { read = try cached.get() } catch { throw ReplyError(reply: .engineFailure(error)) }
        guard case .value(let stored) = read else { return nil }
        return .some(try stored.map { stored throws(ReplyError) in try Self.typed(stored) })
    }

    private static func read(_ key: [UInt8], from engine: Engine) throws(ReplyError) -> TypedValue? {
        let stored: StoredValue?
        do throws(EngineError) { stored = try engine.get(key) } catch { throw ReplyError(reply: .engineFailure(error)) }
        return try stored.map { stored throws(ReplyError) in try typed(stored) }
    }

    static func typed(_ stored: StoredValue) throws(ReplyError) -> TypedValue {
        guard let type = Keyspace.type(of: stored) else {
            throw ReplyError(reply: .error("ERR stored value has an unknown type byte 0x\(String(stored.firstByte ?? 0, radix: 16))"))
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
