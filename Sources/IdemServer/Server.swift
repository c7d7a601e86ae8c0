import IdemEngine
import Idempotency
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

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
    /// The RESP port's event loops; loop 0 also accepts.
    private let loops: [ServerLoop]
    /// Each loop's connections; loop 0's hold the listener.
    private let loopConnections: [LoopBound<LoopConnections>]
    /// Only for the metrics and health endpoint (HTTP, rarely hit).
    private let httpGroup: MultiThreadedEventLoopGroup?
    private let httpListener: (any Channel)?
    private let logger: Logger

    private init(configuration: ServerConfiguration, context: ServerContext, loops: [ServerLoop],
                 loopConnections: [LoopBound<LoopConnections>], port: Int, httpGroup: MultiThreadedEventLoopGroup?,
                 httpListener: (any Channel)?, logger: Logger) {
        self.configuration = configuration
        self.context = context
        self.loops = loops
        self.loopConnections = loopConnections
        self.port = port
        self.httpGroup = httpGroup
        self.httpListener = httpListener
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
        // at once (`LoopConnections`): one write(2) per iteration, not per
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
        let pool = NIOThreadPool(numberOfThreads: max(1, configuration.blockingThreads))
        pool.start()
        let context = ServerContext(configuration: configuration, engine: engine, users: users, metrics: ServerMetrics(),
                                    blockingPool: pool, logger: logger)
        var loops: [ServerLoop] = []
        let loopConnections: [LoopBound<LoopConnections>]
        var httpGroup: MultiThreadedEventLoopGroup?
        do {
            let (listenDescriptor, port) = try listen(configuration.bindAddress, configuration.port)
            do {
                (loops, loopConnections) = try startLoops(count: configuration.eventLoopThreads ?? System.coreCount,
                                                   context: context, listenDescriptor: listenDescriptor)
            } catch {
                Glibc.close(listenDescriptor)
                throw error
            }
            var httpListener: (any Channel)?
            if let metricsPort = configuration.metricsPort {
                let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
                httpGroup = group
                httpListener = try await bindHTTP(configuration.metricsBindAddress, metricsPort) {
                    try await MetricsEndpoint.bootstrap(group: group, context: context).bind(host: $0, port: $1).get()
                }
            }
            let server = IdemServer(configuration: configuration, context: context, loops: loops, loopConnections: loopConnections, port: port,
                                    httpGroup: httpGroup, httpListener: httpListener, logger: logger)
            logger.info("ready to accept connections", metadata: [
                "port": "\(server.port)", "metrics_port": "\(server.metricsPort.map(String.init) ?? "off")",
            ])
            return server
        } catch {
            for loop in loops { loop.stop() }
            try? await pool.shutdownGracefully()
            try? await httpGroup?.shutdownGracefully()
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
        let acceptor = loopConnections[0]
        acceptor.loop.execute { acceptor.value.listener?.close() }
        for client in context.clients.handles { client.drain() }
        let deadline = ContinuousClock.now + drainTimeout
        while context.clients.count > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        try? await httpListener?.close()
        try await context.blockingPool.shutdownGracefully()
        var failure: (any Error)?
        do {
            try engine.close()
        } catch {
            logger.error("closing the engine failed", metadata: ["error": "\(error)"])
            failure = error
        }
        // Stopping a loop closes the clients still on it.
        for loop in loops { loop.stop() }
        try await httpGroup?.shutdownGracefully()
        if let failure { throw failure }
        logger.info("stopped; data synced")
    }

    // MARK: - Set-up

    /// Starts `count` loops; loop 0 accepts and deals connections out to
    /// the loops its `LoopAssignment` has active.
    private static func startLoops(count: Int, context: ServerContext, listenDescriptor: Int32) throws
        -> ([ServerLoop], [LoopBound<LoopConnections>]) {
        let loops = try (0..<max(1, count)).map { index throws(SystemError) in try ServerLoop(index: index) }
        let configuration = context.configuration
        let idleScan = configuration.idleTimeoutMilliseconds > 0
            ? min(1000, max(10, configuration.idleTimeoutMilliseconds / 4)) : 1000
        let balancing = configuration.balanceEventLoops && loops.count > 1
        var handles: [LoopBound<LoopConnections>] = []
        do {
            for loop in loops {
                let connections = LoopConnections(server: context, loop: loop, idleScanMilliseconds: idleScan)
                // Loop 0's tick also ends the balancer's measuring windows.
                let tick = balancing && loop.index == 0 ? min(idleScan, LoopAssignment.windowMilliseconds) : idleScan
                try loop.start(delegate: connections, tickMilliseconds: tick)
                handles.append(LoopBound(connections, loop: loop))
            }
        } catch {
            for handle in handles { handle.loop.stop() }
            throw error
        }
        let logger = context.logger
        // The listener and the assignment live on loop 0 from here on.
        let everyLoop = handles
        loops[0].execute {
            let acceptor = everyLoop[0].value
            let assignment = LoopAssignment(loops: everyLoop, metrics: context.metrics, balancing: balancing,
                                            draining: { context.draining.load(ordering: .relaxed) })
            acceptor.assignment = assignment
            do {
                acceptor.listener = try TCPListener(descriptor: listenDescriptor, loop: acceptor.loop, accepted: { client in
                    let target = assignment.nextTarget()
                    if target.loop === acceptor.loop {
                        target.value.adopt(client)
                    } else {
                        target.loop.execute { target.value.adopt(client) }
                    }
                }, onError: { error in
                    logger.warning("cannot accept a connection", metadata: ["error": "\(error)"])
                })
            } catch {
                logger.critical("cannot watch the listening socket", metadata: ["error": "\(error)"])
                Glibc.close(listenDescriptor)
            }
        }
        return (loops, handles)
    }

    // MARK: - Loop balancing, for tests

    /// Serves with `count` loops from now on (connections move to match,
    /// soon after this returns).
    func useEventLoops(_ count: Int) {
        let acceptor = loopConnections[0]
        acceptor.loop.execute { acceptor.value.assignment?.use(loops: count) }
    }

    /// How many connections each loop serves now.
    func connectionsPerLoop() async -> [Int] {
        var counts: [Int] = []
        for handle in loopConnections {
            counts.append(await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
                handle.loop.execute { done.resume(returning: handle.value.connectionCount) }
            })
        }
        return counts
    }

    private static func listen(_ host: String, _ port: Int) throws(ServerStartError) -> (descriptor: Int32, port: Int) {
        do {
            return try TCPListener.open(host: host, port: port)
        } catch {
            switch error {
            case .addressInUse: throw .portInUse(host: host, port: port)
            case .failed(let reason): throw .cannotBind(host: host, port: port, reason: reason)
            }
        }
    }

    private static func bindHTTP(_ host: String, _ port: Int,
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
