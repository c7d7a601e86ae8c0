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
    /// `commands` again, by `Command.index`, for the per-command lookup
    /// (`CommandName` hashes two words, not a String).
    private let commandsByIndex: [Command]
    private let commandIndexes: [CommandName: Int]
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
        self.commandIndexes = Dictionary(uniqueKeysWithValues: commandsByIndex.map { (CommandName($0.name.utf8)!, $0.index) })
    }

    var now: Int64 { engine.options.clock.nowMilliseconds() }

    func engineKey(namespace: [UInt8], key: ArraySlice<UInt8>) -> [UInt8] {
        // Namespaces are at most 255 bytes (checked when users load), so this cannot fail.
        (try? Keyspace.engineKey(namespace: namespace, key: key)) ?? []
    }

    /// The `Command.index` of the command named `name` (any case), or -1.
    func commandIndex<Name: Collection<UInt8>>(named name: Name) -> Int {
        guard let key = CommandName(name) else { return -1 }
        return commandIndexes[key] ?? -1
    }

    /// Whether command `index` goes through the engine's commit pipeline
    /// (and so may overlap earlier writes of its connection).
    func isWrite(_ index: Int) -> Bool {
        index >= 0 && commandsByIndex[index].flags.contains(.write)
    }

    /// Runs one command for `session`: checks arity, authentication and
    /// the user's role, then calls its handler. `index` is the command's
    /// `commandIndex(named:)`, -1 when unknown.
    func execute(_ index: Int, _ arguments: RequestArguments, session: Session) -> CommandResult {
        guard index >= 0 else {
            return .reply(session.user == nil ? .authenticationRequired : .unknownCommand(arguments))
        }
        let command = commandsByIndex[index]
        guard command.acceptsArgumentCount(arguments.count) else {
            return .reply(session.user == nil && !command.flags.contains(.noAuth)
                ? .authenticationRequired : .wrongArity(command.name))
        }
        guard let user = session.user ?? (command.flags.contains(.noAuth) ? User.anonymous : nil) else {
            return .reply(.authenticationRequired)
        }
        if (command.flags.contains(.admin) && user.role != .admin) || (command.flags.contains(.write) && user.role == .readonly) {
            return .reply(.noPermission(user: user.name, command: command.name))
        }
        session.info.noteCommand(index, at: now)
        return command.run(Invocation(arguments: arguments, session: session, server: self))
    }
}

/// A command name folded to lower case in two words and its length (so
/// "get\0" is not "get"), so finding a command hashes 17 bytes instead of
/// building and hashing a `String`. Every command name fits; longer names
/// are no command.
struct CommandName: Hashable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0
    private let count: UInt8

    init?<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        guard bytes.count <= 16 else { return nil }
        count = UInt8(bytes.count)
        for (offset, byte) in bytes.enumerated() {
            let folded = UInt64(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte)
            if offset < 8 { low |= folded << (8 * UInt64(offset)) } else { high |= folded << (8 * UInt64(offset - 8)) }
        }
    }
}

extension User {
    /// Stands in for a connection that has not authenticated yet, while it
    /// runs a command allowed before authentication (AUTH, HELLO, QUIT).
    static let anonymous = User(name: "(unauthenticated)", role: .readonly, namespace: [], passwordHash: nil)
}
