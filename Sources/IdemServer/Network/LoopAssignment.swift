import Glibc

/// Which event loops serve clients, and which one gets the next accepted
/// connection. Lives on loop 0 (the acceptor), whose tick ends each
/// measuring window.
///
/// Invariants (loop 0's thread only):
/// - New connections go only to the first `activeLoops` loops, in turn;
///   loop 0 is always among them (it never retires, so the listener and
///   this object never move).
/// - When the count changes, connections move so that every active loop
///   serves about as many as the others: growing from k to n loops, each
///   old loop gives (n-k)/n of its connections to the new ones; a retiring
///   loop gives all of its connections to the loops that stay.
/// - With balancing off, every loop is active from the start and nothing
///   moves unless `use(loops:)` is called (tests).
final class LoopAssignment {
    private let loops: [LoopBound<LoopConnections>]
    private let metrics: ServerMetrics
    private let draining: @Sendable () -> Bool
    private var balancer: LoopBalancer?
    private(set) var activeLoops: Int
    private var nextLoop = 0
    private var previous: Measurement?

    /// The length of a measuring window: loop 0's tick. Short, because a
    /// trial costs two windows of a possibly worse loop count, and long
    /// enough to hold thousands of commands and a few /proc/stat ticks.
    static let windowMilliseconds: Int64 = 100

    /// Cumulative counters at the end of a window.
    private struct Measurement {
        var wallNanoseconds: UInt64
        var commands: Int
        var loopNanoseconds: [UInt64]
        var machineIdleTicks: UInt64?
    }

    init(loops: [LoopBound<LoopConnections>], metrics: ServerMetrics, balancing: Bool,
         draining: @escaping @Sendable () -> Bool) {
        self.loops = loops
        self.metrics = metrics
        self.draining = draining
        if balancing {
            let balancer = LoopBalancer(maxLoops: loops.count)
            self.balancer = balancer
            activeLoops = balancer.activeLoops
        } else {
            activeLoops = loops.count
        }
        metrics.setActiveEventLoops(activeLoops)
    }

    /// The loop for a connection just accepted.
    func nextTarget() -> LoopBound<LoopConnections> {
        if nextLoop >= activeLoops { nextLoop = 0 }
        defer { nextLoop += 1 }
        return loops[nextLoop]
    }

    /// Serve with `count` loops from now on, moving connections to match.
    func use(loops count: Int) {
        let count = min(max(1, count), loops.count)
        let old = activeLoops
        guard count != old else { return }
        activeLoops = count
        metrics.setActiveEventLoops(count)
        if count > old {
            let newcomers = Array(loops[old..<count])
            for source in loops[0..<old] {
                send(source, .fraction(numerator: count - old, denominator: count), to: newcomers)
            }
        } else {
            let staying = Array(loops[0..<count])
            for source in loops[count..<old] { send(source, .all, to: staying) }
        }
    }

    private func send(_ source: LoopBound<LoopConnections>, _ share: LoopConnections.MoveShare,
                      to targets: [LoopBound<LoopConnections>]) {
        if source.loop.inLoop {
            source.value.moveConnections(share, to: targets)
        } else {
            source.loop.execute { source.value.moveConnections(share, to: targets) }
        }
    }

    /// Called on loop 0's tick: measures the window that ended and lets
    /// the balancer decide.
    func windowEnded() {
        guard balancer != nil, !draining() else { return }
        let now = measure()
        defer { previous = now }
        guard let before = previous, now.wallNanoseconds > before.wallNanoseconds else { return }
        let seconds = Double(now.wallNanoseconds - before.wallNanoseconds) / 1e9
        var busiest = 0.0
        for index in 0..<activeLoops {
            let used = Double(now.loopNanoseconds[index] &- before.loopNanoseconds[index]) / 1e9
            busiest = max(busiest, used / seconds)
        }
        var idleCores = 0.0
        if let idleNow = now.machineIdleTicks, let idleBefore = before.machineIdleTicks {
            idleCores = Double(idleNow &- idleBefore) / Double(Self.ticksPerSecond) / seconds
        }
        let sample = LoopBalancer.Sample(commandsPerSecond: Double(now.commands - before.commands) / seconds,
                                         busiestLoopUtilization: busiest, idleCores: idleCores)
        if case .use(let count)? = balancer?.observe(sample) { use(loops: count) }
    }

    private func measure() -> Measurement {
        Measurement(wallNanoseconds: ClientConnection.monotonicNanoseconds(),
                    commands: metrics.snapshot().commands,
                    loopNanoseconds: loops.map { $0.loop.cpuNanoseconds ?? 0 },
                    machineIdleTicks: Self.machineIdleTicks())
    }

    private static let ticksPerSecond = max(1, sysconf(Int32(_SC_CLK_TCK)))

    /// Idle and I/O-wait time of all CPUs together, in clock ticks, from
    /// the first line of /proc/stat ("cpu user nice system idle iowait …").
    static func machineIdleTicks() -> UInt64? {
        let descriptor = open("/proc/stat", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { Glibc.close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return parseIdleTicks(buffer[0..<count])
    }

    static func parseIdleTicks(_ text: ArraySlice<UInt8>) -> UInt64? {
        let line = text.prefix { $0 != UInt8(ascii: "\n") }
        let fields = line.split(separator: UInt8(ascii: " "))
        guard fields.count >= 6, fields[0].elementsEqual("cpu".utf8),
              let idle = UInt64(String(decoding: fields[4], as: UTF8.self)),
              let iowait = UInt64(String(decoding: fields[5], as: UTF8.self)) else { return nil }
        return idle + iowait
    }
}
