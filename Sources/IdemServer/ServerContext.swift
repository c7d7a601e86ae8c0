import IdemEngine
import Idempotency
import Logging
import NIOPosix
import RESP
import Synchronization

/// What every connection shares: the store, users, clients, counters and
/// the command table. Immutable apart from its thread-safe counters.
final class ServerContext: Sendable {
    let configuration: ServerConfiguration
    let engine: Engine
    let store: IdempotencyStore
    let users: UserDirectory
    let clients: ClientRegistry
    let metrics: ServerMetrics
    let blockingPool: NIOThreadPool
    let scanCursors = ScanCursors()
    let logger: Logger
    let startedAt: Int64
    let commands: [String: Command]
    /// `commands` again, by `Command.index`, for the per-command lookup.
    private let commandsByIndex: [Command]
    /// What running command `index` needs, by `Command.index`: a copy of a
    /// whole `Command` would retain and release its strings on every command.
    private let dispatch: [Dispatch]

    private struct Dispatch {
        let arity: Int
        let flags: Command.Flags
        let run: @Sendable (Invocation) -> CommandResult

        init(_ command: Command) {
            arity = command.arity
            flags = command.flags
            run = command.run
        }

        func acceptsArgumentCount(_ count: Int) -> Bool {
            arity >= 0 ? count == arity : count >= -arity
        }
    }
    private let commandIndexes: CommandLookup
    /// Set once the server stops taking commands (graceful shutdown).
    let draining = Atomic<Bool>(false)

    init(configuration: ServerConfiguration, engine: Engine, users: UserDirectory, metrics: ServerMetrics,
         blockingPool: NIOThreadPool, logger: Logger) {
        self.configuration = configuration
        self.engine = engine
        self.store = IdempotencyStore(engine: engine, configuration: configuration.idempotency)
        self.users = users
        self.clients = ClientRegistry(maxClients: configuration.maxClients)
        self.metrics = metrics
        self.blockingPool = blockingPool
        self.logger = logger
        self.startedAt = engine.options.clock.nowMilliseconds()
        self.commands = CommandTable.all
        self.commandsByIndex = CommandTable.names.map { CommandTable.all[$0]! }
        self.dispatch = commandsByIndex.map(Dispatch.init)
        self.commandIndexes = CommandLookup(commandsByIndex.map { (CommandName($0.name.utf8)!, $0.index) })
    }

    var now: Int64 { engine.options.clock.nowMilliseconds() }

    func engineKey(namespace: [UInt8], key: ArraySlice<UInt8>) -> [UInt8] {
        // Namespaces are at most 255 bytes (checked when users load), so this cannot fail.
        (try? Keyspace.engineKey(namespace: namespace, key: key)) ?? []
    }

    /// The `Command.index` of the command named `name` (any case), or -1.
    func commandIndex<Name: Collection<UInt8>>(named name: Name) -> Int {
        guard let key = CommandName(name) else { return -1 }
        return commandIndexes.index(of: key)
    }

    /// Whether command `index` goes through the engine's commit pipeline
    /// (and so may overlap earlier writes of its connection).
    func isWrite(_ index: Int) -> Bool {
        index >= 0 && dispatch[index].flags.contains(.write)
    }

    /// Runs one command for `session`: checks arity, authentication and
    /// the user's role, then calls its handler. `index` is the command's
    /// `commandIndex(named:)`, -1 when unknown.
    func execute(_ index: Int, _ arguments: RequestArguments, session: Session) -> CommandResult {
        guard index >= 0 else {
            return .reply(session.role == nil ? .authenticationRequired : .unknownCommand(arguments))
        }
        let command = dispatch[index]
        guard command.acceptsArgumentCount(arguments.count) else {
            return .reply(session.role == nil && !command.flags.contains(.noAuth)
                ? .authenticationRequired : .wrongArity(commandsByIndex[index].name))
        }
        guard let role = session.role ?? (command.flags.contains(.noAuth) ? User.anonymous.role : nil) else {
            return .reply(.authenticationRequired)
        }
        if (command.flags.contains(.admin) && role != .admin) || (command.flags.contains(.write) && role == .readonly) {
            return .reply(.noPermission(user: (session.user ?? User.anonymous).name, command: commandsByIndex[index].name))
        }
        let now = self.now
        session.info.noteCommand(index, at: now)
        return command.run(Invocation(arguments: arguments, session: session, server: self, now: now))
    }
}

/// A command name folded to lower case in two words and its length (so
/// "get\0" is not "get"), so finding a command compares 17 bytes instead
/// of building and hashing a `String`. Every command name fits; longer
/// names are no command.
struct CommandName: Equatable {
    fileprivate var low: UInt64 = 0
    fileprivate var high: UInt64 = 0
    fileprivate let count: UInt8

    init?<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        guard bytes.count <= 16 else { return nil }
        count = UInt8(bytes.count)
        for (offset, byte) in bytes.enumerated() {
            let folded = UInt64(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte)
            if offset < 8 { low |= folded << (8 * UInt64(offset)) } else { high |= folded << (8 * UInt64(offset - 8)) }
        }
    }

    /// A multiplicative hash of the words (no per-process seed needed:
    /// the keys are the server's own command names, not client input;
    /// client input only probes).
    fileprivate var hash: UInt64 {
        (low &* 0x9E37_79B9_7F4A_7C15) ^ (high &* 0xC2B2_AE3D_27D4_EB4F) ^ UInt64(count)
    }
}

/// Command names to `Command.index`: open addressing with linear probing
/// in a table at most a quarter full, so a lookup (every command) is a
/// multiply and one or two comparisons — a `Dictionary` hashes the name
/// with SipHash first.
struct CommandLookup {
    private var slots: [(name: CommandName, index: Int)?]
    private let shift: UInt64

    init(_ entries: [(CommandName, Int)]) {
        var bits: UInt64 = 4
        while (1 << bits) < entries.count * 4 { bits += 1 }
        shift = 64 - bits
        slots = Array(repeating: nil, count: 1 << bits)
        for (name, index) in entries {
            var slot = Int(name.hash >> shift)
            while slots[slot] != nil { slot = (slot + 1) & (slots.count - 1) }
            slots[slot] = (name, index)
        }
    }

    /// The index for `name`, or -1.
    func index(of name: CommandName) -> Int {
        var slot = Int(name.hash >> shift)
        while let entry = slots[slot] {
            if entry.name == name { return entry.index }
            slot = (slot + 1) & (slots.count - 1)
        }
        return -1
    }
}

extension User {
    /// Stands in for a connection that has not authenticated yet, while it
    /// runs a command allowed before authentication (AUTH, HELLO, QUIT).
    static let anonymous = User(name: "(unauthenticated)", role: .readonly, namespace: [], passwordHash: nil)
}
