import ArgumentParser
import Foundation
import IdemEngine
import IdemServer
import Idempotency
import Logging
import ServiceLifecycle

/// `idem serve`: the Redis-protocol server.
///
/// Every option can also come from the environment: `--metrics-port 9121`
/// is `IDEM_METRICS_PORT=9121` (a flag given on the command line wins).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server (Redis protocol; redis-cli and every Redis client work).",
        discussion: "Every option can also be set in the environment as IDEM_<OPTION> (e.g. IDEM_PORT=6380, "
            + "IDEM_REQUIREPASS=...); flags on the command line win.")

    @Option(help: "Data directory (created if missing).") var dir = "./idem-data"
    @Option(help: "Address to listen on.") var bind = "127.0.0.1"
    @Option(help: "Port for clients (0 picks a free one).") var port = 6379
    @Option(help: "When writes are durable: always, everysec or never.") var fsync: Durability = .always
    @Option(help: "Width of a time partition, e.g. 1s, 10m, 1h.")
    var partitionWidth = DurationArgument(milliseconds: 3_600_000)
    @Option(help: "Port of the HTTP listener for /metrics, /healthz, /readyz (off when not given).")
    var metricsPort: Int?
    @Option(help: "Address of the HTTP listener.") var metricsBind = "127.0.0.1"
    @Option(help: "Password of the default user.") var requirepass: String?
    @Option(help: "Users file: name role namespace sha256:hash per line (see `idem hash-password`).")
    var users: String?
    @Option(help: "yes: refuse a non-loopback --bind without a password.") var protectedMode: YesNo = .yes
    @Option(help: "File holding the secret for IDEM.KEYGEN HYBRID / IDEM.VERIFY (or IDEM_KEY_SECRET).")
    var keySecretFile: String?
    @Option(help: "Most clients connected at once.") var maxclients = 10_000
    @Option(help: "Close clients idle this many seconds (0: never).") var timeout = 0
    @Option(help: "Largest bulk argument, e.g. 16m.") var protoMaxBulkLen = ByteSize(bytes: 16 << 20)
    @Option(help: "Longest inline command, e.g. 64k.") var maxInlineLen = ByteSize(bytes: 64 << 10)
    @Option(help: "Replies buffered for one client before it is disconnected, e.g. 64m.")
    var clientOutputBufferLimit = ByteSize(bytes: 64 << 20)
    @Option(help: "Memtable size before a flush, e.g. 64m.") var memtableSize = ByteSize(bytes: 64 << 20)
    // Twice the engine's default (64 MiB, sized for a library sharing its
    // host's memory): the server owns its process, and the decoded blocks
    // of a million 64-byte keys (~100 MB) then stay cached — a block read
    // from the page cache costs a read, a checksum, lz4 and a decode.
    @Option(help: "Block cache size, e.g. 256m.") var blockCacheSize = ByteSize(bytes: 128 << 20)
    @Option(help: "Largest stored value, e.g. 8m.") var maxValueSize = ByteSize(bytes: 8 << 20)
    @Option(help: "IDEM.BEGIN lease when none is given.") var defaultLease = DurationArgument(milliseconds: 30_000)
    @Option(help: "How long idempotency keys are remembered when no TTL is given.")
    var defaultTtl = DurationArgument(milliseconds: 86_400_000)
    @Option(help: "Event loop threads (default: one per core).") var ioThreads: Int?
    @Option(help: "yes: serve with only as many of the event loops as raise throughput, tried as the load comes; no: all.")
    var ioThreadsBalance: YesNo = .yes
    @Option(help: "yes: the allocator's own threads return freed memory to the OS as it ages, even when idle (as Redis's jemalloc-bg-thread).")
    var jemallocBgThread: YesNo = .yes
    @Option(help: "idle: flushes and merges run only on CPU time the event loops leave (Linux SCHED_IDLE; raised to low while flushes or merges fall behind; low where the process may not raise them back); low: nice 10.")
    var maintenancePriority: MaintenancePriority = .idle
    @Option(help: "Log format: text or json.") var logFormat: ServerLogHandler.Format = .text
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info

    func validate() throws {
        if let ioThreads, !(1...256).contains(ioThreads) {
            throw ValidationError("--io-threads must be between 1 and 256 (got \(ioThreads))")
        }
    }

    func run() async throws {
        let format = logFormat, level = logLevel
        LoggingSystem.bootstrap { ServerLogHandler(label: $0, format: format, level: level) }
        let logger = Logger(label: "idem")

        var configuration = ServerConfiguration()
        configuration.directory = dir
        configuration.bindAddress = bind
        configuration.port = port
        configuration.metricsPort = metricsPort
        configuration.metricsBindAddress = metricsBind
        configuration.requirePassword = requirepass
        configuration.usersFile = users
        configuration.protectedMode = protectedMode == .yes
        configuration.maxClients = maxclients
        configuration.idleTimeoutMilliseconds = Int64(timeout) * 1000
        configuration.maxBulkLength = protoMaxBulkLen.bytes
        configuration.maxInlineLength = maxInlineLen.bytes
        configuration.maxOutputBufferBytes = clientOutputBufferLimit.bytes
        configuration.eventLoopThreads = ioThreads
        configuration.balanceEventLoops = ioThreadsBalance == .yes
        configuration.allocator = Allocator.report(backgroundPurge: jemallocBgThread == .yes)
        configuration.engine.durability = fsync
        configuration.engine.partitionWidth = partitionWidth.milliseconds
        configuration.engine.memtableSize = memtableSize.bytes
        configuration.engine.blockCacheSize = blockCacheSize.bytes
        configuration.engine.maxValueSize = maxValueSize.bytes
        configuration.engine.maintenancePriority = maintenancePriority
        configuration.idempotency.defaultLease = defaultLease.milliseconds
        configuration.idempotency.defaultTTL = defaultTtl.milliseconds
        if let keySecretFile {
            configuration.keyGenerator = try KeyGenerator.loadingSecret(fromFile: keySecretFile)
        } else if ProcessInfo.processInfo.environment["IDEM_KEY_SECRET"] != nil {
            configuration.keyGenerator = try KeyGenerator.loadingSecret(fromEnvironment: "IDEM_KEY_SECRET")
        }
        if jemallocBgThread == .yes, configuration.allocator?.backgroundPurge == false {
            logger.warning("jemalloc's background purge did not start: freed memory returns to the OS only as threads allocate")
        }
        logger.info("starting idem", metadata: ["configuration": "\(configuration.loggableDescription)",
                                                "allocator": "\(Allocator.name)"])

        // The server starts inside the group, once the group has taken
        // SIGTERM and SIGINT over: started before, it accepted connections
        // while those signals still killed the process outright — a stop
        // right after start skipped the graceful shutdown (and its last
        // log sync under everysec).
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: ServerService(configuration: configuration, logger: logger))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Starts the server, then serves until the graceful shutdown.
private struct ServerService: Service {
    let configuration: ServerConfiguration
    let logger: Logger

    func run() async throws {
        let server: IdemServer
        do {
            server = try await IdemServer.start(configuration: configuration, logger: logger)
        } catch let error as ServerStartError {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        try await server.run()
    }
}

enum YesNo: String, ExpressibleByArgument, CaseIterable {
    case yes, no
}

extension ServerLogHandler.Format: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// A size typed as a number with an optional unit: `512`, `64k`, `16m`, `1g`.
struct ByteSize: ExpressibleByArgument {
    var bytes: Int

    init(bytes: Int) {
        self.bytes = bytes
    }

    init?(argument: String) {
        let lowered = argument.lowercased()
        let units: [(String, Int)] = [("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1 << 10), ("m", 1 << 20),
                                      ("g", 1 << 30), ("b", 1)]
        var scale = 1
        var digits = Substring(lowered)
        for (suffix, factor) in units where lowered.hasSuffix(suffix) {
            scale = factor
            digits = lowered.dropLast(suffix.count)
            break
        }
        guard let value = Int(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        bytes = product
    }

    var defaultValueDescription: String {
        bytes % (1 << 20) == 0 ? "\(bytes >> 20)m" : bytes % (1 << 10) == 0 ? "\(bytes >> 10)k" : "\(bytes)"
    }
}

/// `idem hash-password`: the users-file form of a password, read from standard input.
struct HashPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the users-file hash (sha256:...) of the password read from standard input.")

    func run() throws {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("type the password on standard input (e.g. `printf %s \"$PASS\" | idem hash-password`)")
        }
        print(UserDirectory.hashField(line))
    }
}

/// Maps `IDEM_<OPTION>` environment variables onto `--<option>` flags for
/// `idem serve` (flags given on the command line win).
enum EnvironmentOptions {
    static func arguments(_ arguments: [String], environment: [String: String]) -> [String] {
        guard arguments.first == "serve" else { return arguments }
        var result = arguments
        let given = Set(arguments.filter { $0.hasPrefix("--") }.map { String($0.dropFirst(2).split(separator: "=")[0]) })
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("IDEM_") && name != "IDEM_KEY_SECRET" {
            let option = name.dropFirst(5).lowercased().replacingOccurrences(of: "_", with: "-")
            guard !given.contains(option), Serve.optionNames.contains(option) else { continue }
            result += ["--\(option)", value]
        }
        return result
    }
}

extension Serve {
    static let optionNames: Set<String> = [
        "dir", "bind", "port", "fsync", "partition-width", "metrics-port", "metrics-bind", "requirepass", "users",
        "protected-mode", "key-secret-file", "maxclients", "timeout", "proto-max-bulk-len", "max-inline-len",
        "client-output-buffer-limit", "memtable-size", "block-cache-size", "max-value-size", "default-lease",
        "default-ttl", "io-threads", "log-format", "log-level",
    ]
}
