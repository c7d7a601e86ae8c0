import IdemEngine
import Idempotency
import NIOCore
import RESP
import Synchronization

/// A reply that ends a command early, thrown out of a decision taken
/// inside an engine update (e.g. `WRONGTYPE`).
struct ReplyError: Error {
    var reply: RESPValue
}

/// A result that is usually ready at once: with `--fsync everysec` or
/// `never`, or when nothing changed, the engine completes an update before
/// `update` returns, and no future (nor its allocations) is needed.
enum Eventual<R: Sendable> {
    case ready(Result<R, any Error>)
    case later(EventLoopFuture<R>)

    func future(on eventLoop: any EventLoop) -> EventLoopFuture<R> {
        switch self {
        case .ready(let result): eventLoop.makeCompletedFuture(result)
        case .later(let future): future
        }
    }
}

/// Where an engine completion (on any thread, possibly before `update`
/// returns) meets the event loop that waits for it.
final class Rendezvous<R: Sendable>: Sendable {
    private enum State {
        case waiting
        case done(Result<R, any Error>)
        case promised(EventLoopPromise<R>)
    }

    private let state = Mutex<State>(.waiting)

    func complete(_ result: Result<R, any Error>) {
        let promise: EventLoopPromise<R>? = state.withLock { state in
            guard case .promised(let promise) = state else {
                state = .done(result)
                return nil
            }
            return promise
        }
        promise?.completeWith(result)
    }

    /// The result if it is in, else a future for it.
    func settle(on eventLoop: any EventLoop) -> Eventual<R> {
        state.withLock { state in
            if case .done(let result) = state { return .ready(result) }
            let promise = eventLoop.makePromise(of: R.self)
            state = .promised(promise)
            return .later(promise.futureResult)
        }
    }
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
    func withValues(of keys: [[UInt8]], _ body: @escaping @Sendable ([TypedValue?]) throws(ReplyError) -> RESPValue) -> CommandResult {
        let engine = server.engine
        let engineKeys = keys.map(engineKey)
        do throws(ReplyError) {
            var values: [TypedValue?] = []
            values.reserveCapacity(keys.count)
            for key in engineKeys {
                let cached: Engine.CachedRead
                do throws(EngineError) { cached = try engine.get(ifCached: key) } catch { throw ReplyError(reply: .engineFailure(error)) }
                guard case .value(let stored) = cached else { break }
                values.append(try stored.map { stored throws(ReplyError) in try Self.typed(stored) })
            }
            if values.count == keys.count { return .reply(try body(values)) }
        } catch {
            return .reply(error.reply)
        }
        return offload {
            do throws(ReplyError) {
                let values = try engineKeys.map { key throws(ReplyError) -> TypedValue? in
                    let stored: StoredValue?
                    do throws(EngineError) { stored = try engine.get(key) } catch { throw ReplyError(reply: .engineFailure(error)) }
                    return try stored.map { stored throws(ReplyError) in try Self.typed(stored) }
                }
                return try body(values)
            } catch {
                return error.reply
            }
        }
    }

    static func typed(_ stored: StoredValue) throws(ReplyError) -> TypedValue {
        guard let type = Keyspace.type(of: stored.value) else {
            throw ReplyError(reply: .error("ERR stored value has an unknown type byte 0x\(String(stored.value.first ?? 0, radix: 16))"))
        }
        return TypedValue(type: type, stored: stored)
    }

    /// Reads the live value, lets `decide` choose the change and the
    /// result, and applies it — one linearizable engine update. Ready at
    /// once when the change is already durable (or nothing changed);
    /// otherwise a future completing on this event loop once it is. A
    /// failure carries the reply to send (`ReplyError`) or the engine's error.
    func update<R: Sendable>(_ key: [UInt8], _ decide: (TypedValue?) throws(ReplyError) -> (Mutation?, R)) -> Eventual<R> {
        let rendezvous = Rendezvous<R>()
        server.engine.update(engineKey(key), { stored in
            try decide(try stored.map { stored throws(ReplyError) in try Self.typed(stored) })
        }, completion: { result in
            rendezvous.complete(result)
        })
        return rendezvous.settle(on: eventLoop)
    }

    /// Turns an eventual result into the command's reply.
    func reply<R: Sendable>(_ eventual: Eventual<R>, _ transform: @escaping @Sendable (R) -> RESPValue) -> CommandResult {
        switch eventual {
        case .ready(.success(let value)): .reply(transform(value))
        case .ready(.failure(let error)): .reply(Self.replyForError(error))
        case .later(let future): .later(future.map(transform).recover(Self.replyForError))
        }
    }

    @Sendable static func replyForError(_ error: any Error) -> RESPValue {
        switch error {
        case let error as ReplyError: error.reply
        case let error as EngineError: .engineFailure(error)
        default: .error("ERR \(error)")
        }
    }
}
