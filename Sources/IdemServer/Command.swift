import NIOCore
import RESP

/// What running a command produced: a reply now, or one later (a write
/// waiting for its group commit, or work done off the event loop).
enum CommandResult {
    case reply(RESPValue)
    /// Reply, then close the connection (QUIT).
    case replyThenClose(RESPValue)
    case later(EventLoopFuture<RESPValue>)
}

/// One command as the server received it, with what a handler may use.
struct Invocation {
    /// The arguments, the command name first.
    let arguments: [[UInt8]]
    let session: Session
    let server: ServerContext
    let eventLoop: any EventLoop

    var argumentCount: Int { arguments.count }

    subscript(_ index: Int) -> [UInt8] { arguments[index] }

    /// Argument `index`, upper-cased (for option names).
    func option(_ index: Int) -> String {
        String(decoding: arguments[index].map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    /// Argument `index` as Redis's `string2ll` reads it.
    func integer(_ index: Int) -> Int64? {
        RESPInteger.parse(arguments[index])
    }

    /// The engine key of the user's key in the session's namespace.
    func engineKey(_ key: [UInt8]) -> [UInt8] {
        server.engineKey(namespace: session.namespace, key: key)
    }

    /// A future reply: `work` runs on the blocking pool (disk, long scans),
    /// never on the event loop.
    func offload(_ work: @escaping @Sendable () -> RESPValue) -> CommandResult {
        .later(server.blockingPool.runIfActive(eventLoop: eventLoop, work))
    }
}

/// A command the server knows, as `COMMAND INFO` describes it.
struct Command: Sendable {
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt8
        /// Changes data: refused to read-only users.
        static let write = Flags(rawValue: 1)
        /// Only for admin users.
        static let admin = Flags(rawValue: 2)
        /// Allowed before the connection has authenticated.
        static let noAuth = Flags(rawValue: 4)
        /// Answers from memory only (connection and server state).
        static let fast = Flags(rawValue: 8)
    }

    /// Lower-case, as `COMMAND` lists it.
    let name: String
    /// Redis's convention: N exactly N arguments (the name included), -N at least N.
    let arity: Int
    let flags: Flags
    /// Key positions (first, last, step) for COMMAND INFO; 0 when none.
    let keys: (first: Int, last: Int, step: Int)
    let summary: String
    let run: @Sendable (Invocation) -> CommandResult
    /// Position in `CommandTable.names` (set when the table is built).
    var index = -1

    init(name: String, arity: Int, flags: Flags, keys: (first: Int, last: Int, step: Int), summary: String,
         run: @escaping @Sendable (Invocation) -> CommandResult) {
        self.name = name
        self.arity = arity
        self.flags = flags
        self.keys = keys
        self.summary = summary
        self.run = run
    }

    func acceptsArgumentCount(_ count: Int) -> Bool {
        arity >= 0 ? count == arity : count >= -arity
    }

    var flagNames: [String] {
        var names: [String] = []
        if flags.contains(.write) { names.append("write") } else { names.append("readonly") }
        if flags.contains(.admin) { names.append("admin") }
        if flags.contains(.noAuth) { names.append("no_auth") }
        if flags.contains(.fast) { names.append("fast") }
        return names
    }

    /// The reply to `COMMAND INFO name`.
    var info: RESPValue {
        .array([.bulk(name), .integer(Int64(arity)), .set(flagNames.map { .simpleString($0) }),
                .integer(Int64(keys.first)), .integer(Int64(keys.last)), .integer(Int64(keys.step)),
                .set([]), .set([]), .set([]), .array([])])
    }
}

/// Decimal integers as Redis parses them (`string2ll`): optional minus, no
/// leading zeros or spaces, within 64 bits.
enum RESPInteger {
    static func parse(_ bytes: [UInt8]) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var index = 0
        let negative = bytes[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "0") { return bytes.count - index == 1 && !negative ? 0 : nil }
        var magnitude: UInt64 = 0
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit <= 9 else { return nil }
            let (times, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(digit))
            guard !overflow1 && !overflow2 else { return nil }
            magnitude = sum
            index += 1
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }
}
