import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The server's metrics: swift-metrics instruments backed by a Prometheus
/// registry of the server's own (so two servers in one process, as in
/// tests, never mix their figures). Engine and idempotency figures are
/// read at scrape time (`MetricsEndpoint`).
final class ServerMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    let connectionsAccepted: Metrics.Counter
    let connectionsRejected: Metrics.Counter
    let failedAuthentications: Metrics.Counter
    let keyspaceHits: Metrics.Counter
    let keyspaceMisses: Metrics.Counter
    let bytesIn: Metrics.Counter
    let bytesOut: Metrics.Counter
    let protocolErrors: Metrics.Counter
    let slowReadersDisconnected: Metrics.Counter

    /// Per command, by `Command.index` (the last entry for unknown
    /// commands): ok and error counters and a latency timer.
    private let perCommand: [(ok: Metrics.Counter, error: Metrics.Counter, latency: Metrics.Timer)]

    /// Plain numbers for INFO (Prometheus counters are write-only from here).
    private let totals = Totals()

    /// `commandNames` in `Command.index` order (`CommandTable.names`).
    init(commandNames: [String] = CommandTable.names) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
            .milliseconds(250), .seconds(1),
        ]
        self.factory = factory
        func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Metrics.Counter {
            Metrics.Counter(label: label, dimensions: dimensions, factory: factory)
        }
        connectionsAccepted = counter("idem_connections_accepted_total")
        connectionsRejected = counter("idem_connections_rejected_total")
        failedAuthentications = counter("idem_failed_auth_total")
        keyspaceHits = counter("idem_keyspace_hits_total")
        keyspaceMisses = counter("idem_keyspace_misses_total")
        bytesIn = counter("idem_net_input_bytes_total")
        bytesOut = counter("idem_net_output_bytes_total")
        protocolErrors = counter("idem_protocol_errors_total")
        slowReadersDisconnected = counter("idem_slow_readers_disconnected_total")
        self.perCommand = (commandNames + ["unknown"]).map { name in
            (counter("idem_commands_total", [("command", name), ("outcome", "ok")]),
                                counter("idem_commands_total", [("command", name), ("outcome", "error")]),
                                Metrics.Timer(label: "idem_command_duration_seconds", dimensions: [("command", name)],
                                              factory: factory))
        }
    }

    /// `index`: the command's `Command.index`, or -1 for an unknown command.
    func recordCommand(_ index: Int, failed: Bool, nanoseconds: Int64) {
        let instruments = perCommand.indices.contains(index) ? perCommand[index] : perCommand[perCommand.count - 1]
        (failed ? instruments.error : instruments.ok).increment()
        instruments.latency.recordNanoseconds(nanoseconds)
        totals.commands.add(1, ordering: .relaxed)
        if failed { totals.errors.add(1, ordering: .relaxed) }
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

    func countBytes(in input: Int, out output: Int) {
        if input > 0 {
            bytesIn.increment(by: input)
            totals.bytesIn.add(input, ordering: .relaxed)
        }
        if output > 0 {
            bytesOut.increment(by: output)
            totals.bytesOut.add(output, ordering: .relaxed)
        }
    }

    func countKeyspace(hit: Bool) {
        if hit {
            keyspaceHits.increment()
            totals.hits.add(1, ordering: .relaxed)
        } else {
            keyspaceMisses.increment()
            totals.misses.add(1, ordering: .relaxed)
        }
    }

    func countFailedAuthentication() {
        failedAuthentications.increment()
        totals.failedAuthentications.add(1, ordering: .relaxed)
    }

    struct Snapshot {
        var commands = 0, errorReplies = 0, connectionsAccepted = 0, connectionsRejected = 0
        var bytesIn = 0, bytesOut = 0, keyspaceHits = 0, keyspaceMisses = 0, failedAuthentications = 0
    }

    func snapshot() -> Snapshot {
        Snapshot(commands: totals.commands.load(ordering: .relaxed), errorReplies: totals.errors.load(ordering: .relaxed),
                 connectionsAccepted: totals.accepted.load(ordering: .relaxed),
                 connectionsRejected: totals.rejected.load(ordering: .relaxed),
                 bytesIn: totals.bytesIn.load(ordering: .relaxed), bytesOut: totals.bytesOut.load(ordering: .relaxed),
                 keyspaceHits: totals.hits.load(ordering: .relaxed), keyspaceMisses: totals.misses.load(ordering: .relaxed),
                 failedAuthentications: totals.failedAuthentications.load(ordering: .relaxed))
    }

    private final class Totals: Sendable {
        let commands = Atomic<Int>(0), errors = Atomic<Int>(0), accepted = Atomic<Int>(0), rejected = Atomic<Int>(0)
        let bytesIn = Atomic<Int>(0), bytesOut = Atomic<Int>(0), hits = Atomic<Int>(0), misses = Atomic<Int>(0)
        let failedAuthentications = Atomic<Int>(0)
    }
}
