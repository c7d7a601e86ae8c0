import IdemEngine
import Logging
import NIOCore
import NIOPosix
import RESP

/// The command layer without sockets, for the libFuzzer target in Fuzz/:
/// a server context over an in-memory file system and a manual clock, fed
/// whole commands, answering each with one reply — exactly as a connection
/// would, minus the channel.
@_spi(Fuzzing)
public final class CommandFuzzing {
    private let context: ServerContext
    private let group: MultiThreadedEventLoopGroup
    private let pool: NIOThreadPool
    private let loop: any EventLoop
    private let session: NIOLoopBound<Session>
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
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        context = ServerContext(configuration: configuration, engine: engine,
                                users: try UserDirectory(requirePassword: nil, usersFile: nil),
                                metrics: ServerMetrics(),
                                blockingPool: pool, logger: logger)
        let loop = group.next()
        let user = context.users.initialUser
        self.loop = loop
        let metrics = context.metrics.shard(for: loop)
        session = try loop.submit {
            NIOLoopBound(Session(info: ClientInfo(id: 1, remoteAddress: "fuzz", localAddress: "fuzz", connectedAt: 0),
                                 user: user, metrics: metrics), eventLoop: loop)
        }.wait()
    }

    /// Runs one command to completion and returns its reply, encoded in the
    /// session's protocol (which HELLO may change).
    public func run(_ arguments: [[UInt8]]) throws -> (reply: RESPValue, encoded: [UInt8]) {
        let (loop, session, context) = (self.loop, self.session, self.context)
        let future: EventLoopFuture<RESPValue> = try loop.submit {
            switch context.execute(context.commandIndex(named: arguments[0]), arguments, session: session.value, eventLoop: loop) {
            case .reply(let value), .replyThenClose(let value): return loop.makeSucceededFuture(value)
            case .pending(let pending):
                let promise = loop.makePromise(of: RESPValue.self)
                pending.whenReady(on: context.mailbox(for: loop)) { promise.succeed($0) }
                return promise.futureResult
            }
        }.wait()
        let reply = try future.wait()
        let version = try loop.submit { session.value.protocolVersion }.wait()
        return (reply, RESPEncoder.encode(reply, version: version))
    }

    /// Runs maintenance (flushes sealed memtables, drops, compacts), so
    /// later reads also go through tables.
    public func maintain() throws {
        try context.engine.runMaintenance()
    }

    public func close() throws {
        try pool.syncShutdownGracefully()
        try group.syncShutdownGracefully()
        try context.engine.close()
    }
}
