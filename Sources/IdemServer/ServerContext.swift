import IdemEngine
import Idempotency
import Logging
import NIOCore
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
    }

    var now: Int64 { engine.options.clock.nowMilliseconds() }

    func engineKey(namespace: [UInt8], key: [UInt8]) -> [UInt8] {
        // Namespaces are at most 255 bytes (checked when users load), so this cannot fail.
        (try? Keyspace.engineKey(namespace: namespace, key: key)) ?? []
    }

    /// Whether the command named `name` goes through the engine's commit
    /// pipeline (and so may overlap earlier writes of its connection).
    func isWrite(_ name: [UInt8]) -> Bool {
        commands[Self.lowercased(name)]?.flags.contains(.write) ?? false
    }

    static func lowercased(_ name: [UInt8]) -> String {
        CommandTable.lowercasedName(name)
    }

    /// Runs one command for `session`: looks it up, checks arity,
    /// authentication and the user's role, then calls its handler.
    /// Returns the command's `Command.index` (-1 when unknown) with the result.
    func execute(_ arguments: [[UInt8]], session: Session, eventLoop: any EventLoop) -> (command: Int, result: CommandResult) {
        let name = Self.lowercased(arguments[0])
        guard let command = commands[name] else {
            return (-1, .reply(session.user == nil ? .authenticationRequired : .unknownCommand(arguments)))
        }
        guard command.acceptsArgumentCount(arguments.count) else {
            return (command.index, .reply(session.user == nil && !command.flags.contains(.noAuth)
                ? .authenticationRequired : .wrongArity(name)))
        }
        guard let user = session.user ?? (command.flags.contains(.noAuth) ? User.anonymous : nil) else {
            return (command.index, .reply(.authenticationRequired))
        }
        if (command.flags.contains(.admin) && user.role != .admin) || (command.flags.contains(.write) && user.role == .readonly) {
            return (command.index, .reply(.noPermission(user: user.name, command: name)))
        }
        session.info.noteCommand(command.index, at: now)
        return (command.index, command.run(Invocation(arguments: arguments, session: session, server: self, eventLoop: eventLoop)))
    }
}

extension User {
    /// Stands in for a connection that has not authenticated yet, while it
    /// runs a command allowed before authentication (AUTH, HELLO, QUIT).
    static let anonymous = User(name: "(unauthenticated)", role: .readonly, namespace: [], passwordHash: nil)
}
