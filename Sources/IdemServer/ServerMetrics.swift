import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The server's metrics. Rare events (connections, failed
/// authentications, protocol errors) are swift-metrics instruments backed
/// by a Prometheus registry of the server's own (so two servers in one
/// process, as in tests, never mix their figures); what every command
/// counts goes to the event loop's `MetricsShard`, added up at scrape time.
/// Engine and idempotency figures are read at scrape time too
/// (`MetricsEndpoint`).
final class ServerMetrics: Sendable {
    let registry: PrometheusCollectorRegistry

    let connectionsAccepted: Metrics.Counter
    let connectionsRejected: Metrics.Counter
    let failedAuthentications: Metrics.Counter
    let protocolErrors: Metrics.Counter
    let slowReadersDisconnected: Metrics.Counter
    let connectionsMoved: Metrics.Counter

    /// `CommandTable.names`, and "unknown" last.
    private let commandNames: [String]
    private let shards: PerLoop<MetricsShard>

    /// Plain numbers for INFO (Prometheus counters are write-only from here).
    private let totals = Totals()

    /// `commandNames` in `Command.index` order (`CommandTable.names`).
    init(commandNames: [String] = CommandTable.names) {
        registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        func counter(_ label: String) -> Metrics.Counter {
            Metrics.Counter(label: label, dimensions: [], factory: factory)
        }
        connectionsAccepted = counter("idem_connections_accepted_total")
        connectionsRejected = counter("idem_connections_rejected_total")
        failedAuthentications = counter("idem_failed_auth_total")
        protocolErrors = counter("idem_protocol_errors_total")
        slowReadersDisconnected = counter("idem_slow_readers_disconnected_total")
        connectionsMoved = counter("idem_connections_moved_total")
        let slots = commandNames.count + 1
        self.commandNames = commandNames + ["unknown"]
        shards = PerLoop { _ in MetricsShard(commandCount: slots) }
    }

    /// The shard of `loop` (made on first use).
    func shard(for loop: ServerLoop) -> MetricsShard {
        shards.value(for: loop)
    }

    /// The slot for command `index` (-1: unknown command).
    func commandSlot(_ index: Int) -> Int {
        index >= 0 && index < commandNames.count - 1 ? index : commandNames.count - 1
    }

    func countConnection(accepted: Bool) {
        if accepted {
            connectionsAccepted.increment()
            totals.accepted.add(1, ordering: .relaxed)
        } else {
            connectionsRejected.increment()
            totals.rejected.add(1, ordering: .relaxed)
        }
    }

    /// A connection handed to another event loop (`LoopAssignment`).
    func countConnectionMoved() {
        connectionsMoved.increment()
        totals.moved.add(1, ordering: .relaxed)
    }

    /// The event loops serving clients now (set by `LoopAssignment`).
    func setActiveEventLoops(_ count: Int) {
        totals.activeEventLoops.store(count, ordering: .relaxed)
    }

    func countFailedAuthentication() {
        failedAuthentications.increment()
        totals.failedAuthentications.add(1, ordering: .relaxed)
    }

    struct Snapshot {
        var commands = 0, errorReplies = 0, connectionsAccepted = 0, connectionsRejected = 0
        var bytesIn = 0, bytesOut = 0, keyspaceHits = 0, keyspaceMisses = 0, failedAuthentications = 0
        var connectionsMoved = 0, activeEventLoops = 0
    }

    func snapshot() -> Snapshot {
        let all = shards.all
        func sum(_ total: MetricsShard.Total) -> Int { all.reduce(0) { $0 + $1.load(total) } }
        return Snapshot(commands: sum(.commands), errorReplies: sum(.errorReplies),
                        connectionsAccepted: totals.accepted.load(ordering: .relaxed),
                        connectionsRejected: totals.rejected.load(ordering: .relaxed),
                        bytesIn: sum(.bytesIn), bytesOut: sum(.bytesOut),
                        keyspaceHits: sum(.keyspaceHits), keyspaceMisses: sum(.keyspaceMisses),
                        failedAuthentications: totals.failedAuthentications.load(ordering: .relaxed),
                        connectionsMoved: totals.moved.load(ordering: .relaxed),
                        activeEventLoops: totals.activeEventLoops.load(ordering: .relaxed))
    }

    /// The sharded figures in the Prometheus text format: traffic, keyspace
    /// hits and misses, and per command (those run at least once) the
    /// count by outcome and a latency histogram.
    func exposition() -> String {
        let all = shards.all
        let snapshot = snapshot()
        var text = ""
        func counter(_ name: String, _ help: String, _ value: Int) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
        }
        counter("idem_net_input_bytes_total", "bytes read from clients", snapshot.bytesIn)
        counter("idem_net_output_bytes_total", "bytes written to clients", snapshot.bytesOut)
        counter("idem_keyspace_hits_total", "reads that found their key", snapshot.keyspaceHits)
        counter("idem_keyspace_misses_total", "reads that did not find their key", snapshot.keyspaceMisses)
        text += "# HELP idem_io_threads_active event loops serving clients now\n# TYPE idem_io_threads_active gauge\n"
        text += "idem_io_threads_active \(snapshot.activeEventLoops)\n"
        let perCommand = commandNames.indices.map { index in
            var figures = MetricsShard.CommandFigures()
            for shard in all { figures.add(shard.command(index)) }
            return figures
        }
        text += "# HELP idem_commands_total commands run, by outcome\n# TYPE idem_commands_total counter\n"
        for (name, figures) in zip(commandNames, perCommand) where figures.ok + figures.errors > 0 {
            text += "idem_commands_total{command=\"\(name)\",outcome=\"ok\"} \(figures.ok)\n"
            text += "idem_commands_total{command=\"\(name)\",outcome=\"error\"} \(figures.errors)\n"
        }
        text += "# HELP idem_command_duration_seconds time from a command's parse to its reply\n"
        text += "# TYPE idem_command_duration_seconds histogram\n"
        for (name, figures) in zip(commandNames, perCommand) where figures.ok + figures.errors > 0 {
            var cumulative = 0
            for (bucket, count) in figures.buckets.enumerated() {
                cumulative += count
                let bound = bucket < MetricsShard.bucketBounds.count
                    ? "\(Double(MetricsShard.bucketBounds[bucket]) / 1e9)" : "+Inf"
                text += "idem_command_duration_seconds_bucket{command=\"\(name)\",le=\"\(bound)\"} \(cumulative)\n"
            }
            text += "idem_command_duration_seconds_sum{command=\"\(name)\"} \(Double(figures.nanoseconds) / 1e9)\n"
            text += "idem_command_duration_seconds_count{command=\"\(name)\"} \(cumulative)\n"
        }
        return text
    }

    private final class Totals: Sendable {
        let accepted = Atomic<Int>(0), rejected = Atomic<Int>(0), failedAuthentications = Atomic<Int>(0)
        let moved = Atomic<Int>(0), activeEventLoops = Atomic<Int>(0)
    }
}
