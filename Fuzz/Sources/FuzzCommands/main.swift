@_spi(Fuzzing) import IdemServer
import RESP

/// Arbitrary bytes as a client's request stream, run through the command
/// layer (every command the server has, over an in-memory file system) and
/// checked against a model of plain string keys:
/// - every command gets exactly one reply, which encodes, and every error
///   reply starts with an upper-case error code;
/// - GET, EXISTS, DEL, SETNX, GETDEL and plain SET agree with a dictionary
///   for every key the model still knows (any other command touching a key
///   makes the model forget it).
/// One server is shared across inputs (FLUSHALL between them), as opening
/// an engine per input would dominate the run.
nonisolated(unsafe) let server = try! CommandFuzzing()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let parser = RESPRequestParser()
    var model = StringModel()
    _ = try! server.run([Array("HELLO".utf8), Array("2".utf8)])
    _ = try! server.run([Array("FLUSHALL".utf8)])
    var offset = 0
    var commands = 0
    while offset < input.count && commands < 300 {
        let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
        switch parser.parse(rest) {
        case .incomplete, .protocolError:
            return 0
        case .skip(let consumed):
            offset += consumed
        case .command(let arguments, let consumed):
            offset += consumed
            commands += 1
            let (reply, encoded) = try! server.run(arguments)
            precondition(!encoded.isEmpty, "an empty reply to \(arguments)")
            if case .error(let text) = reply {
                precondition(text.first.map { $0.isUppercase } ?? false, "error without a code: \(text)")
            }
            model.check(arguments, reply)
            if commands % 64 == 0 { try? server.maintain() }
        }
    }
    return 0
}

/// What plain string commands must answer, for the keys it is sure of.
struct StringModel {
    /// Known keys: a value, or nil for known absent. Keys not listed are
    /// absent unless `forgotten` (touched by a command the model ignores).
    var values: [[UInt8]: [UInt8]?] = [:]
    var forgotten: Set<[UInt8]> = []

    func known(_ key: [UInt8]) -> [UInt8]?? {
        if forgotten.contains(key) { return nil }
        return .some(values[key] ?? nil)
    }

    mutating func check(_ arguments: [[UInt8]], _ reply: RESPValue) {
        let name = String(decoding: arguments[0], as: UTF8.self).uppercased()
        let keys = Array(arguments.dropFirst())
        if case .error(let text) = reply, !text.hasPrefix("WRONGTYPE") {
            // Refused (arity, syntax, limits): nothing changed — unless the
            // engine failed midway, which the in-memory file system never does.
            if name == "SET" || name == "GETDEL" || name == "DEL" || name == "SETNX" { forget(keys) }
            return
        }
        switch (name, keys.count) {
        case ("GET", 1):
            if let expected = known(keys[0]) { precondition(reply == .bulkString(expected), "GET \(keys[0]): \(reply) vs \(String(describing: expected))") }
        case ("EXISTS", 1...):
            if keys.allSatisfy({ known($0) != nil }) {
                let count = keys.filter { known($0)! != nil }.count
                precondition(reply == .integer(Int64(count)), "EXISTS: \(reply) vs \(count)")
            }
        case ("SET", 2) where reply == .ok:
            values[keys[0]] = keys[1]
            forgotten.remove(keys[0])
        case ("SETNX", 2):
            if let expected = known(keys[0]) {
                precondition(reply == .integer(expected == nil ? 1 : 0), "SETNX: \(reply)")
                if expected == nil { values[keys[0]] = keys[1] }
            } else {
                forget(keys)
            }
        case ("GETDEL", 1):
            if let expected = known(keys[0]) { precondition(reply == .bulkString(expected), "GETDEL: \(reply)") }
            values[keys[0]] = .some(nil)
            forgotten.remove(keys[0])
        case ("DEL", 1...), ("UNLINK", 1...):
            if keys.allSatisfy({ known($0) != nil }) {
                let count = Set(keys).filter { known($0)! != nil }.count
                precondition(reply == .integer(Int64(count)), "DEL: \(reply) vs \(count)")
            }
            for key in keys {
                values[key] = .some(nil)
                forgotten.remove(key)
            }
        case ("FLUSHALL", _), ("FLUSHDB", _):
            if reply == .ok {
                values = [:]
                forgotten = []
            }
        case ("GET", _), ("EXISTS", _), ("TYPE", _), ("TTL", _), ("PTTL", _), ("MGET", _), ("SCAN", _), ("DBSIZE", _),
             ("PING", _), ("ECHO", _), ("INFO", _), ("TIME", _), ("COMMAND", _), ("CONFIG", _), ("IDEM.GET", _),
             ("IDEM.KEYGEN", _), ("IDEM.VERIFY", _), ("CLIENT", _), ("HELLO", _), ("SELECT", _):
            break // read-only
        default:
            forget(keys)
        }
    }

    mutating func forget(_ keys: [[UInt8]]) {
        for key in keys { forgotten.insert(key) }
    }
}
