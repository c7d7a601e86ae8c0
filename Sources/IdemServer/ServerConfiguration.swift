import IdemEngine
import Idempotency
import RESP

/// Everything `idem serve` can be told. Defaults match the README.
public struct ServerConfiguration: Sendable {
    public var directory = "./idem-data"
    public var bindAddress = "127.0.0.1"
    /// 6379 so that `redis-cli` works with no arguments; 0 picks a free port (tests).
    public var port = 6379
    /// The HTTP listener for /metrics, /healthz and /readyz; nil turns it off; 0 picks a free port.
    public var metricsPort: Int?
    public var metricsBindAddress = "127.0.0.1"
    public var engine = EngineOptions()
    public var idempotency = IdempotencyConfiguration()
    /// Password of the default user; nil leaves the default user open (as
    /// Redis does) unless a users file is given.
    public var requirePassword: String?
    /// Path of the users file (see `UserDirectory`).
    public var usersFile: String?
    /// Refuse to listen on a non-loopback address with no password (Redis's protected mode).
    public var protectedMode = true
    /// Secret for `IDEM.KEYGEN HYBRID` and `IDEM.VERIFY`.
    public var keyGenerator: KeyGenerator?

    // MARK: Limits

    public var maxClients = 10_000
    /// Longest inline command and `*`/`$` header line (bytes).
    public var maxInlineLength = 64 * 1024
    /// Largest bulk argument (`proto-max-bulk-len`). The engine's value limit
    /// applies on top for what is stored.
    public var maxBulkLength = 16 << 20
    /// Most arguments in one multibulk request.
    public var maxArguments = 1024 * 1024
    /// Close a client that sends nothing for this many milliseconds; 0 never.
    public var idleTimeoutMilliseconds: Int64 = 0
    /// Replies queued for one client (bytes) before it is disconnected as a
    /// slow reader.
    public var maxOutputBufferBytes = 64 << 20
    /// Commands of one client awaiting their durable write before the
    /// server stops reading from that client.
    public var maxPendingCommands = 1024
    /// Threads that serve disk reads, scans and flushes off the event loops.
    public var blockingThreads = 2
    /// Event loop threads; nil uses one per core.
    public var eventLoopThreads: Int?
    /// Serve with only as many of the event loops as raise throughput,
    /// measured as the load comes (`LoopBalancer`); false: all of them.
    public var balanceEventLoops = true
    /// The process's allocator, for `INFO memory` and `CONFIG GET
    /// jemalloc-bg-thread`: given by the executable that links one (the
    /// server library leaves the allocator to whoever embeds it); nil
    /// reports libc's malloc.
    public var allocator: AllocatorReport?

    public init() {}

    var parserLimits: RESPRequestParser.Limits {
        var limits = RESPRequestParser.Limits()
        limits.maxInlineLength = maxInlineLength
        limits.maxBulkLength = maxBulkLength
        limits.maxArguments = maxArguments
        return limits
    }

    /// The effective configuration for the start-up log, secrets masked.
    public var loggableDescription: String {
        var parts = [
            "dir=\(directory)", "bind=\(bindAddress)", "port=\(port)",
            "metrics-port=\(metricsPort.map(String.init) ?? "off")",
            "fsync=\(engine.durability.rawValue)", "partition-width=\(engine.partitionWidth)ms",
            "memtable-size=\(engine.memtableSize)", "block-cache=\(engine.blockCacheSize)",
            "maintenance-priority=\(engine.maintenancePriority.rawValue)",
            "requirepass=\(requirePassword == nil ? "(none)" : "****")",
            "users=\(usersFile ?? "(none)")", "protected-mode=\(protectedMode ? "yes" : "no")",
            "io-threads=\(eventLoopThreads.map(String.init) ?? "auto")", "io-threads-balance=\(balanceEventLoops ? "yes" : "no")",
            "jemalloc-bg-thread=\(allocator?.backgroundPurge == true ? "yes" : "no")",
            "maxclients=\(maxClients)", "proto-max-bulk-len=\(maxBulkLength)", "timeout=\(idleTimeoutMilliseconds / 1000)s",
            "default-lease=\(idempotency.defaultLease)ms", "default-ttl=\(idempotency.defaultTTL)ms",
        ]
        parts.append("key-secret=\(keyGenerator == nil ? "(none)" : "****")")
        return parts.joined(separator: " ")
    }
}

/// What the executable knows of its allocator (`idem serve` links jemalloc).
public struct AllocatorReport: Sendable {
    /// Bytes as Redis's `INFO memory` names them: `allocated` by the
    /// program, `active` in the pages holding those allocations, `resident`
    /// in the allocator's pages the OS has mapped in (including freed pages
    /// not yet handed back).
    public struct Statistics: Sendable, Equatable {
        public var allocated: Int
        public var active: Int
        public var resident: Int

        public init(allocated: Int, active: Int, resident: Int) {
            self.allocated = allocated
            self.active = active
            self.resident = resident
        }
    }

    /// `mem_allocator`, e.g. "jemalloc-5.3.0".
    public var name: String
    /// Whether freed pages go back to the OS from the allocator's own
    /// threads (Redis's `jemalloc-bg-thread`), rather than only when a
    /// thread happens to allocate or free.
    public var backgroundPurge: Bool
    /// Fresh figures; nil when the allocator cannot tell.
    public var statistics: @Sendable () -> Statistics?

    public init(name: String, backgroundPurge: Bool, statistics: @escaping @Sendable () -> Statistics?) {
        self.name = name
        self.backgroundPurge = backgroundPurge
        self.statistics = statistics
    }
}
