import Dispatch
import IdemEngine
import Logging
import NIOPosix
import RESP
import Synchronization

/// The command layer without sockets, for the libFuzzer target in Fuzz/:
/// a server context over an in-memory file system and a manual clock, fed
/// whole commands, answering each with one reply — exactly as a connection
/// would, minus the socket. Commands run on a server loop of their own, as
/// they would for a client.
@_spi(Fuzzing)
public final class CommandFuzzing {
    private let context: ServerContext
    private let pool: NIOThreadPool
    private let loop: ServerLoop
    private let mailbox: LoopMailbox
    private let session: LoopBound<Session>
    public let clock = ManualClock()

    public init() throws {
        var configuration = ServerConfiguration()
        configuration.directory = "/fuzz"
        configuration.engine.fileSystem = SimulatedFileSystem()
        configuration.engine.clock = clock
        configuration.engine.durability = .never
        configuration.engine.backgroundMaintenance = false
        configuration.engine.memtableSize = 256 << 10
        let engine = try Engine.open(directory: configuration.directory, options: configuration.engine)
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        context = ServerContext(configuration: configuration, engine: engine,
                                users: try UserDirectory(requirePassword: nil, usersFile: nil),
                                metrics: ServerMetrics(),
                                blockingPool: pool, logger: logger)
        loop = try ServerLoop(index: 0)
        try loop.start(delegate: LoopConnections(server: context, loop: loop, idleScanMilliseconds: 1000), tickMilliseconds: 1000)
        mailbox = LoopMailbox(loop: loop)
        let info = ClientInfo(id: 1, remoteAddress: "fuzz", localAddress: "fuzz", connectedAt: 0)
        session = LoopBound(Session(info: info, user: context.users.initialUser, metrics: context.metrics.shard(for: loop)),
                            loop: loop)
    }

    /// Runs one command and waits for its reply (encoded in the session's
    /// protocol version after the command ran).
    public func run(_ arguments: [[UInt8]]) throws -> (reply: RESPValue, encoded: [UInt8]) {
        let (session, context, mailbox) = (self.session, self.context, self.mailbox)
        let answer = Answer()
        loop.execute {
            switch context.execute(context.commandIndex(named: arguments[0]), RequestArguments(arguments), session: session.value) {
            case .reply(let value), .replyThenClose(let value):
                answer.give(value, session.value.protocolVersion)
            case .pending(let pending):
                pending.whenReady(on: mailbox) { value in answer.give(value, session.value.protocolVersion) }
            }
        }
        let (reply, version) = answer.wait()
        return (reply, RESPEncoder.encode(reply, version: version))
    }

    public func maintain() throws {
        try context.engine.runMaintenance()
    }

    public func close() throws {
        try pool.syncShutdownGracefully()
        loop.stop()
        try context.engine.close()
    }

    /// One reply handed from the loop to the waiting fuzzer thread.
    private final class Answer: Sendable {
        private let value = Mutex<(RESPValue, RESPVersion)?>(nil)
        private let ready = DispatchSemaphore(value: 0)

        func give(_ reply: RESPValue, _ version: RESPVersion) {
            value.withLock { $0 = (reply, version) }
            ready.signal()
        }

        func wait() -> (RESPValue, RESPVersion) {
            ready.wait()
            return value.withLock { $0! }
        }
    }
}
