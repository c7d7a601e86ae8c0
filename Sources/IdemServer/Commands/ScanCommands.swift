import Dispatch
import IdemEngine
import Idempotency
import RESP
import Synchronization

/// SCAN, DBSIZE, FLUSHDB and FLUSHALL: commands that walk a namespace.
/// They run on the blocking pool, never on an event loop.
enum ScanCommands {
    static let table: [Command] = [
        Command(name: "scan", arity: -2, flags: [], keys: (0, 0, 0),
                summary: "SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]", run: scan),
        Command(name: "dbsize", arity: 1, flags: [], keys: (0, 0, 0), summary: "The number of live keys.", run: dbsize),
        Command(name: "flushdb", arity: -1, flags: [.write, .admin], keys: (0, 0, 0),
                summary: "Deletes every key of the namespace.", run: { flush($0, everyNamespace: false) }),
        Command(name: "flushall", arity: -1, flags: [.write, .admin], keys: (0, 0, 0),
                summary: "Deletes every key of every namespace.", run: { flush($0, everyNamespace: true) }),
    ]

    static func scan(_ call: Invocation) -> CommandResult {
        guard let cursor = UInt64(String(decoding: call[1], as: UTF8.self)) else { return .reply(.invalidCursor) }
        var pattern: GlobPattern?
        var count = 10
        var type: [UInt8]?
        var index = 2
        while index < call.argumentCount {
            guard index + 1 < call.argumentCount else { return .reply(.syntaxError) }
            switch call.option(index) {
            case "MATCH": pattern = GlobPattern(call[index + 1])
            case "COUNT":
                guard let value = call.integer(index + 1) else { return .reply(.notAnInteger) }
                guard value >= 1 else { return .reply(.syntaxError) }
                count = Int(min(value, 1_000_000))
            case "TYPE": type = call[index + 1].map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
            default: return .reply(.syntaxError)
            }
            index += 2
        }
        let namespace = call.session.namespace
        let prefix = call.server.engineKey(namespace: namespace, key: [])
        var start = prefix
        if cursor != 0 {
            guard let position = call.server.scanCursors.position(cursor, namespace: namespace) else {
                return .reply(.invalidCursor)
            }
            start = position.resumeKey
        }
        let server = call.server
        let wanted = pattern.flatMap { $0.matchesEverything ? nil : $0 }
        let (from, limit, wantedType) = (start, count, type)
        return call.offload {
            var keys: [RESPValue] = []
            var visited = 0
            var last: [UInt8]?
            do throws(EngineError) {
                try server.engine.scan(prefix: prefix, from: from) { engineKey, value in
                    visited += 1
                    last = engineKey
                    let key = Keyspace.userKey(engineKey, namespace: namespace)
                    let typeName = Keyspace.type(of: value).map { Array($0.name.utf8) } ?? []
                    let typeMatches = wantedType.map { typeName == $0 } ?? true
                    if typeMatches && (wanted?.matches(key) ?? true) { keys.append(.bulkString(Array(key))) }
                    return visited < limit
                }
            } catch {
                return .engineFailure(error)
            }
            var next: UInt64 = 0
            if visited == limit, let last {
                // Resume strictly after the last key visited.
                next = server.scanCursors.save(.init(namespace: namespace, resumeKey: last + [0]))
            }
            return .array([.bulk(String(next)), .array(keys)])
        }
    }

    static func dbsize(_ call: Invocation) -> CommandResult {
        let server = call.server
        let prefix = server.engineKey(namespace: call.session.namespace, key: [])
        return call.offload {
            var count: Int64 = 0
            do throws(EngineError) {
                try server.engine.scan(prefix: prefix) { _, _ in
                    count += 1
                    return true
                }
            } catch {
                return .engineFailure(error)
            }
            return .integer(count)
        }
    }

    static func flush(_ call: Invocation, everyNamespace: Bool) -> CommandResult {
        if call.argumentCount > 2 { return .reply(.syntaxError) }
        if call.argumentCount == 2 && call.option(1) != "ASYNC" && call.option(1) != "SYNC" { return .reply(.syntaxError) }
        let server = call.server
        let prefix = everyNamespace ? [Keyspace.tag] : server.engineKey(namespace: call.session.namespace, key: [])
        server.logger.notice("flush requested", metadata: [
            "audit": everyNamespace ? "flushall" : "flushdb", "user": "\(call.session.user?.name ?? "")",
            "client": "\(call.session.info.remoteAddress)", "client_id": "\(call.session.info.id)",
        ])
        return call.offload {
            do throws(EngineError) {
                let deleted = try deleteAll(prefix: prefix, engine: server.engine)
                server.logger.notice("flush done", metadata: ["deleted": "\(deleted)"])
                return .ok
            } catch {
                return .engineFailure(error)
            }
        }
    }

    /// Deletes every live key under `prefix`, a thousand per durable batch.
    /// Keys written meanwhile may survive (the flush is not one atomic step).
    static func deleteAll(prefix: [UInt8], engine: Engine) throws(EngineError) -> Int {
        var deleted = 0
        var resume: [UInt8]? = nil
        while true {
            let page = try engine.scan(prefix: prefix, from: resume, limit: 1000)
            guard !page.isEmpty else { return deleted }
            var batch = WriteBatch()
            for (key, _) in page { batch.delete(key) }
            try waitForWrite(batch, engine: engine)
            deleted += page.count
            resume = page.last!.key + [0]
        }
    }

    /// Blocks this (pool) thread until `batch` is durable.
    private static func waitForWrite(_ batch: WriteBatch, engine: Engine) throws(EngineError) {
        let done = DispatchSemaphore(value: 0)
        let outcome = ResultBox()
        engine.write(batch) { result in
            outcome.set(result)
            done.signal()
        }
        engine.writeDeferredLog()
        done.wait()
        try outcome.get()
    }
}

/// Hands one write's result from the engine's commit thread to a waiting thread.
private final class ResultBox: Sendable {
    private let result = Mutex<Result<Void, EngineError>>(.success(()))
    func set(_ value: Result<Void, EngineError>) { result.withLock { $0 = value } }
    func get() throws(EngineError) { try result.withLock { $0 }.get() }
}
