import RESP

/// What running a command produced: a reply now, or one later (a write
/// waiting for its group commit, or work done off the event loop).
enum CommandResult {
    case reply(RESPValue)
    /// Reply, then close the connection (QUIT).
    case replyThenClose(RESPValue)
    /// The reply comes later (a write awaiting its log write, work on the
    /// blocking pool).
    case pending(PendingReply)
}

/// One command as the server received it, with what a handler may use.
struct Invocation {
    /// The arguments, the command name first. Valid for as long as the
    /// invocation is kept (a copy, not a view of the connection's buffer).
    let arguments: RequestArguments
    let session: Session
    let server: ServerContext
    /// The engine clock's time when the command started (one reading for
    /// everything the command decides by the clock).
    let now: Int64

    var argumentCount: Int { arguments.count }

    /// Argument `index` as an array of its own (allocates: hot paths use
    /// `argument(_:)`).
    subscript(_ index: Int) -> [UInt8] { Array(arguments[index]) }

    /// Argument `index` without a copy.
    func argument(_ index: Int) -> ArraySlice<UInt8> { arguments[index] }

    /// Argument `index`, upper-cased (for option names). Written straight
    /// into the string: an option name fits a small string, so this
    /// allocates nothing (SET parses two options per call).
    func option(_ index: Int) -> String {
        arguments.withArgument(index) { argument in
            String(unsafeUninitializedCapacity: argument.count) { buffer in
                for (position, byte) in argument.enumerated() {
                    buffer[position] = byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte
                }
                return argument.count
            }
        }
    }

    /// Argument `index` as Redis's `string2ll` reads it.
    func integer(_ index: Int) -> Int64? {
        arguments.withArgument(index) { RESPInteger.parse($0) }
    }

    /// The engine key of the user's key in the session's namespace.
    func engineKey(_ key: ArraySlice<UInt8>) -> [UInt8] {
        server.engineKey(namespace: session.namespace, key: key)
    }

    /// A future reply: `work` runs on the blocking pool (disk, long scans),
    /// never on the event loop.
    func offload(_ work: @escaping @Sendable () -> RESPValue) -> CommandResult {
        let pending = PendingReply()
        server.blockingPool.submit { state in
            pending.complete(state == .active ? work() : .error("ERR server is shutting down"))
        }
        return .pending(pending)
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
