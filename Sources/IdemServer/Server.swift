import IdemEngine
import Idempotency
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Why the server would not start, each with what to do about it.
public enum ServerStartError: Error, CustomStringConvertible {
    case portInUse(host: String, port: Int)
    case cannotBind(host: String, port: Int, reason: String)
    case protectedMode(address: String)
    case usersFile(path: String, reason: String)
    case engine(directory: String, EngineError)

    public var description: String {
        switch self {
        case .portInUse(let host, let port):
            "cannot listen on \(host):\(port): the port is already in use (another server? pick one with --port)"
        case .cannotBind(let host, let port, let reason):
            "cannot listen on \(host):\(port): \(reason)"
        case .protectedMode(let address):
            "refusing to listen on \(address) with no password: set --requirepass or --users, "
                + "or pass --protected-mode no if the network is trusted"
        case .usersFile(let path, let reason):
            "cannot load users from \(path): \(reason)"
        case .engine(let directory, let error):
            "cannot open \(directory): \(error)"
        }
    }
}

/// The Redis-protocol server: a listener for clients, an HTTP listener for
/// metrics and health, and the engine they share.
///
/// `start` returns once both listeners are bound (so tests can connect);
/// `shutdown` stops accepting, lets every connection finish the commands it
/// already sent, syncs and closes the engine. As a `Service` (swift-service-
/// lifecycle), `run` waits for the graceful-shutdown signal, then shuts down.
public final class IdemServer: Service, Sendable {
    public let configuration: ServerConfiguration
    /// The port clients connect to (the bound one when configured as 0).
    public let port: Int
    /// The bound metrics port, when the HTTP listener is on.
    public let metricsPort: Int?
    public var engine: Engine { context.engine }

    let context: ServerContext
    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel
    private let httpListener: (any Channel)?
    private let logger: Logger

    private init(configuration: ServerConfiguration, context: ServerContext, group: MultiThreadedEventLoopGroup,
                 listener: any Channel, httpListener: (any Channel)?, logger: Logger) {
        self.configuration = configuration
        self.context = context
        self.group = group
        self.listener = listener
        self.httpListener = httpListener
        self.port = listener.localAddress?.port ?? configuration.port
        self.metricsPort = httpListener?.localAddress?.port
        self.logger = logger
    }

    public static func start(configuration: ServerConfiguration, logger: Logger = Logger(label: "idem")) async throws -> IdemServer {
        let users = try loadUsers(configuration)
        if configuration.protectedMode && !users.hasPasswords && !isLoopback(configuration.bindAddress) {
            throw ServerStartError.protectedMode(address: configuration.bindAddress)
        }
        let engine: Engine
        var engineOptions = configuration.engine
        // Each event loop appends the log records of its iteration's writes
        // at once (`ConnectionHandler`): one write(2) per iteration, not per
        // command.
        engineOptions.deferLogWrites = true
        do {
            engine = try Engine.open(directory: configuration.directory, options: engineOptions)
        } catch {
            throw ServerStartError.engine(directory: configuration.directory, error)
        }
        let report = engine.recoveryReport
        logger.info("recovered", metadata: [
            "entries": "\(report.entriesReplayed)", "wal_segments": "\(report.segmentsReplayed)",
            "tables": "\(report.tablesOpened)", "torn_tail_bytes": "\(report.tornTailBytes)",
            "seconds": "\(report.durationSeconds)",
        ])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads ?? System.coreCount)
        let pool = NIOThreadPool(numberOfThreads: max(1, configuration.blockingThreads))
        pool.start()
        let metrics = ServerMetrics()
        let context = ServerContext(configuration: configuration, engine: engine, users: users, metrics: metrics,
                                    blockingPool: pool, logger: logger)
        do {
            let listener = try await bind(configuration.bindAddress, configuration.port) {
                try await clientBootstrap(group: group, context: context).bind(host: $0, port: $1).get()
            }
            var httpListener: (any Channel)?
            if let metricsPort = configuration.metricsPort {
                httpListener = try await bind(configuration.metricsBindAddress, metricsPort) {
                    try await MetricsEndpoint.bootstrap(group: group, context: context).bind(host: $0, port: $1).get()
                }
            }
            let server = IdemServer(configuration: configuration, context: context, group: group, listener: listener,
                                    httpListener: httpListener, logger: logger)
            logger.info("ready to accept connections", metadata: [
                "port": "\(server.port)", "metrics_port": "\(server.metricsPort.map(String.init) ?? "off")",
            ])
            return server
        } catch {
            try? await pool.shutdownGracefully()
            try? await group.shutdownGracefully()
            try? engine.close()
            throw error
        }
    }

    public func run() async throws {
        try await gracefulShutdown()
        try await shutdown()
    }

    /// Stops accepting, drains every connection (each finishes what it
    /// already sent), syncs and closes the engine. Waits at most
    /// `drainTimeout` for clients before closing them.
    public func shutdown(drainTimeout: Duration = .seconds(10)) async throws {
        guard !context.draining.exchange(true, ordering: .relaxed) else { return }
        logger.info("shutting down: no new connections; draining clients", metadata: ["clients": "\(context.clients.count)"])
        try? await listener.close()
        for channel in context.clients.channels {
            channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
        let deadline = ContinuousClock.now + drainTimeout
        while context.clients.count > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        for channel in context.clients.channels { try? await channel.close() }
        try? await httpListener?.close()
        try await context.blockingPool.shutdownGracefully()
        do {
            try engine.close()
        } catch {
            logger.error("closing the engine failed", metadata: ["error": "\(error)"])
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
        logger.info("stopped; data synced")
    }

    // MARK: - Set-up

    private static func clientBootstrap(group: MultiThreadedEventLoopGroup, context: ServerContext) -> ServerBootstrap {
        let idleTimeout = context.configuration.idleTimeoutMilliseconds
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 511)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 512 * 1024))
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if idleTimeout > 0 {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .milliseconds(idleTimeout)))
                    }
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(server: context))
                }
            }
    }

    private static func bind(_ host: String, _ port: Int,
                             _ body: (String, Int) async throws -> any Channel) async throws -> any Channel {
        do {
            return try await body(host, port)
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ServerStartError.portInUse(host: host, port: port)
        } catch {
            throw ServerStartError.cannotBind(host: host, port: port, reason: "\(error)")
        }
    }

    private static func loadUsers(_ configuration: ServerConfiguration) throws -> UserDirectory {
        var contents: String?
        if let path = configuration.usersFile {
            do {
                let bytes = try PosixFileSystem().readFile(path)
                contents = String(decoding: bytes, as: UTF8.self)
            } catch {
                throw ServerStartError.usersFile(path: path, reason: "\(error)")
            }
        }
        do {
            return try UserDirectory(requirePassword: configuration.requirePassword, usersFile: contents)
        } catch {
            throw ServerStartError.usersFile(path: configuration.usersFile ?? "", reason: "\(error)")
        }
    }

    static func isLoopback(_ address: String) -> Bool {
        address == "localhost" || address == "::1" || address.hasPrefix("127.")
    }
}
