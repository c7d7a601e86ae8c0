import IdemEngine
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import Synchronization

/// The HTTP listener: `/metrics` (Prometheus text), `/healthz` (the
/// process answers) and `/readyz` (recovery done, writes accepted, not
/// shutting down).
enum MetricsEndpoint {
    static func bootstrap(group: MultiThreadedEventLoopGroup, context: ServerContext) -> ServerBootstrap {
        let gauges = EngineGauges(registry: context.metrics.registry)
        return ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(context: context, gauges: gauges))
                }
            }
    }

    /// The readiness verdict and its reason.
    static func readiness(_ context: ServerContext) -> (ready: Bool, reason: String) {
        if context.draining.load(ordering: .relaxed) { return (false, "shutting down") }
        if let reason = context.engine.statistics.readOnlyReason { return (false, "read-only: \(reason)") }
        return (true, "ready")
    }
}

private final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let context: ServerContext
    private let gauges: EngineGauges
    private var request: HTTPRequestHead?

    init(context: ServerContext, gauges: EngineGauges) {
        self.context = context
        self.gauges = gauges
    }

    func channelRead(context channelContext: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, channelContext)
        }
    }

    private func respond(to head: HTTPRequestHead, _ channelContext: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        var status = HTTPResponseStatus.ok
        var contentType = "text/plain; charset=utf-8"
        var body: [UInt8]
        switch (head.method, path) {
        case (.GET, "/metrics"):
            gauges.update(from: context)
            body = context.metrics.registry.emitToBuffer() + Array(context.metrics.exposition().utf8)
            contentType = "text/plain; version=0.0.4; charset=utf-8"
        case (.GET, "/healthz"):
            body = Array("ok\n".utf8)
        case (.GET, "/readyz"):
            let (ready, reason) = MetricsEndpoint.readiness(context)
            status = ready ? .ok : .serviceUnavailable
            body = Array("\(reason)\n".utf8)
        case (_, "/metrics"), (_, "/healthz"), (_, "/readyz"):
            status = .methodNotAllowed
            body = Array("use GET\n".utf8)
        default:
            status = .notFound
            body = Array("not found: try /metrics, /healthz or /readyz\n".utf8)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        channelContext.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                             promise: nil)
        channelContext.write(wrapOutboundOut(.body(.byteBuffer(channelContext.channel.allocator.buffer(bytes: body)))),
                             promise: nil)
        let done = channelContext.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in channelContext.close(promise: nil) }
        }
    }
}

/// Engine and idempotency figures, read at scrape time: monotonic ones as
/// counters (advanced by the difference since the last scrape), levels as gauges.
private final class EngineGauges: Sendable {
    private let counters: [String: Prometheus.Counter]
    private let gauges: [String: Gauge]
    private let last = Mutex<[String: Int]>([:])

    private static let counterNames: [(String, String)] = [
        ("idem_wal_syncs_total", "WAL fdatasyncs"),
        ("idem_wal_bytes_total", "bytes appended to the WAL"),
        ("idem_writes_acknowledged_total", "writes acknowledged durable"),
        ("idem_write_failures_total", "writes that failed (ENOSPC, EIO, read-only)"),
        ("idem_write_stalls_total", "times writers waited for flushes"),
        ("idem_flushes_total", "memtable flushes"),
        ("idem_compactions_total", "compactions"),
        ("idem_compaction_bytes_written_total", "bytes of tables written by compactions (flushes excluded)"),
        ("idem_partition_drops_total", "expired partitions deleted whole"),
        ("idem_block_cache_hits_total", "block cache hits"),
        ("idem_block_cache_misses_total", "block cache misses"),
        ("idem_idempotency_acquired_total", "IDEM.BEGIN that acquired a fresh key"),
        ("idem_idempotency_replays_total", "IDEM.BEGIN answered with a stored response"),
        ("idem_idempotency_conflicts_total", "IDEM.BEGIN refused: attempt in progress"),
        ("idem_idempotency_mismatches_total", "IDEM.BEGIN refused: fingerprint mismatch"),
        ("idem_idempotency_takeovers_total", "IDEM.BEGIN that took over a lapsed lease"),
        ("idem_idempotency_lease_lost_total", "owner calls refused: lease lost"),
        ("idem_idempotency_completed_total", "IDEM.COMPLETE that stored a response"),
        ("idem_idempotency_aborted_total", "IDEM.ABORT"),
        ("idem_idempotency_forgotten_total", "IDEM.FORGET that deleted a record"),
    ]
    private static let gaugeNames: [(String, String)] = [
        ("idem_wal_sync_seconds", "total seconds spent in WAL fdatasync"),
        ("idem_flush_seconds", "total seconds spent flushing memtables"),
        ("idem_compaction_seconds", "total seconds spent merging tables (flushes a merge lets in excluded)"),
        ("idem_partition_drop_seconds", "total seconds spent deleting expired partitions"),
        ("idem_memtable_bytes", "bytes in the active memtable"),
        ("idem_memtable_entries", "entries in the active memtable"),
        ("idem_sealed_memtables", "memtables waiting for their flush"),
        ("idem_partitions", "live time partitions"),
        ("idem_tables_hot", "SSTables in the hot tier"),
        ("idem_tables_cold", "SSTables in the cold tier"),
        ("idem_disk_bytes", "bytes of SSTables on disk"),
        ("idem_block_cache_bytes", "bytes in the block cache"),
        ("idem_read_only", "1 when writes are refused (a failed fsync; restart needed)"),
        ("idem_connected_clients", "connected clients"),
    ]

    init(registry: PrometheusCollectorRegistry) {
        counters = Dictionary(uniqueKeysWithValues: Self.counterNames.map { ($0.0, registry.makeCounter(descriptor: Self.descriptor($0))) })
        gauges = Dictionary(uniqueKeysWithValues: Self.gaugeNames.map { ($0.0, registry.makeGauge(descriptor: Self.descriptor($0))) })
    }

    private static func descriptor(_ entry: (name: String, help: String)) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: entry.name, unitName: "", helpText: entry.help)
    }

    func update(from context: ServerContext) {
        let statistics = context.engine.statistics
        let idempotency = context.store.metrics.snapshot
        let totals: [String: Int] = [
            "idem_wal_syncs_total": statistics.walSyncs, "idem_wal_bytes_total": statistics.walBytes,
            "idem_writes_acknowledged_total": statistics.writesAcknowledged,
            "idem_write_failures_total": statistics.writeFailures, "idem_write_stalls_total": statistics.writeStalls,
            "idem_flushes_total": statistics.maintenance.flushes, "idem_compactions_total": statistics.maintenance.compactions,
            "idem_compaction_bytes_written_total": Int(statistics.maintenance.compactionBytesWritten),
            "idem_partition_drops_total": statistics.maintenance.partitionsDropped,
            "idem_block_cache_hits_total": statistics.blockCacheHits, "idem_block_cache_misses_total": statistics.blockCacheMisses,
            "idem_idempotency_acquired_total": idempotency.acquired, "idem_idempotency_replays_total": idempotency.replayed,
            "idem_idempotency_conflicts_total": idempotency.inProgressConflicts,
            "idem_idempotency_mismatches_total": idempotency.mismatches,
            "idem_idempotency_takeovers_total": idempotency.takeovers,
            "idem_idempotency_lease_lost_total": idempotency.leaseLost,
            "idem_idempotency_completed_total": idempotency.completed, "idem_idempotency_aborted_total": idempotency.aborted,
            "idem_idempotency_forgotten_total": idempotency.forgotten,
        ]
        last.withLock { last in
            for (name, total) in totals {
                let delta = total - (last[name] ?? 0)
                if delta > 0 { counters[name]?.increment(by: Int64(delta)) }
                last[name] = total
            }
        }
        let partitions = context.engine.partitions
        let tables = partitions.flatMap(\.tables)
        let levels: [String: Double] = [
            "idem_wal_sync_seconds": statistics.walSyncSeconds,
            "idem_flush_seconds": statistics.maintenance.flushSeconds,
            "idem_compaction_seconds": statistics.maintenance.compactionSeconds,
            "idem_partition_drop_seconds": statistics.maintenance.dropSeconds,
            "idem_memtable_bytes": Double(statistics.memtableBytes),
            "idem_memtable_entries": Double(statistics.memtableEntries),
            "idem_sealed_memtables": Double(statistics.sealedMemtables),
            "idem_partitions": Double(statistics.partitions),
            "idem_tables_hot": Double(tables.filter { $0.tier == .hot }.count),
            "idem_tables_cold": Double(tables.filter { $0.tier == .cold }.count),
            "idem_disk_bytes": Double(statistics.tableBytes),
            "idem_block_cache_bytes": Double(statistics.blockCacheBytes),
            "idem_read_only": statistics.readOnlyReason == nil ? 0 : 1,
            "idem_connected_clients": Double(context.clients.count),
        ]
        for (name, value) in levels { gauges[name]?.set(value) }
    }
}
