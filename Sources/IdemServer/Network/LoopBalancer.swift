/// Decides how many event loops serve the clients, from what the last
/// window measured.
///
/// Why not always all of them: a second loop pays only if a core is free
/// to run it. When the machine is already busy — the clients on the same
/// small machine, each sending one command per round trip — two loops
/// split the same ready sockets into smaller batches (more wake-ups,
/// system calls and cross-core traffic per command) and compete with the
/// clients for the cores: on the 2-core machine of BENCHMARKS.md one loop
/// served `redis-benchmark -P 1` 1.6× faster than two, at a quarter of
/// the p99. With pipelined clients the second loop wins instead. Which
/// applies cannot be told from any one gauge, so the balancer tries: it
/// adds a loop when the busiest active one is saturated and the machine
/// has a core's worth of idle time, keeps it only if the throughput rose,
/// and otherwise goes back and waits longer before the next try (as the
/// .NET thread pool's hill climbing does with its thread count). It also
/// periodically tries one loop fewer, and keeps that unless throughput
/// fell.
///
/// Invariants: `activeLoops` stays in `1...maxLoops`; at most one trial
/// runs at a time; a trial is judged on a window that began after its
/// connections moved (`settleWindows`), against the window before it.
/// The balancer is a pure state machine: the caller measures and moves
/// connections, so its decisions are tested without threads or sockets.
struct LoopBalancer {
    /// One window's measurements.
    struct Sample {
        /// Commands completed per second, all loops together.
        var commandsPerSecond: Double
        /// CPU time of the busiest active loop, as a fraction of the window.
        var busiestLoopUtilization: Double
        /// Idle CPU of the whole machine, in cores.
        var idleCores: Double
    }

    enum Decision: Equatable {
        case stay
        /// Serve with this many loops (the others' clients move to them).
        case use(loops: Int)
    }

    private enum Phase {
        case steady
        /// Switched from `previousLoops`; `baseline` was the throughput
        /// before. `grow` says which way the trial went.
        case trial(previousLoops: Int, baseline: Double, settling: Int, grow: Bool)
    }

    /// When trials one way (growing, or shrinking) may start.
    private struct Direction {
        let initialBackoff: Int
        /// Windows to wait after the next failure.
        var backoff: Int
        /// Windows before the next trial may start.
        var wait = 0

        init(initialBackoff: Int) {
            self.initialBackoff = initialBackoff
            backoff = initialBackoff
        }

        mutating func windowPassed() { wait = max(0, wait - 1) }
        mutating func kept() { backoff = initialBackoff }
        mutating func failed() {
            wait = backoff
            backoff = min(LoopBalancer.maxBackoff, backoff * 2)
        }
        /// The other way just paid: trying it back right away would undo
        /// what was just learned.
        mutating func postpone() { wait = backoff }
        mutating func reset() {
            backoff = initialBackoff
            wait = 0
        }
    }

    let maxLoops: Int
    private(set) var activeLoops: Int
    private var phase = Phase.steady
    private var growing = Direction(initialBackoff: LoopBalancer.initialGrowBackoff)
    private var shrinking = Direction(initialBackoff: LoopBalancer.initialShrinkBackoff)

    /// Below this rate there is nothing to balance.
    static let minimumLoad = 1000.0
    static let saturated = 0.85
    static let spareCores = 0.25
    /// A trial must beat its baseline by this much to be kept (growing)
    /// or may fall short of it by this much and still be kept (shrinking).
    static let requiredGain = 1.05
    static let toleratedLoss = 0.97
    static let settleWindows = 1
    /// Windows (of `LoopAssignment.windowMilliseconds`, 100 ms) to wait
    /// before the first retry of a failed grow, and before the first
    /// shrink trial after a change. A shrink trial is wanted rarely: it
    /// saves CPU when the load fell, and it undoes a grow that stopped
    /// paying, both of which can wait seconds; a failed one costs two
    /// windows of lower throughput (measured: 5–8 % of a 4-second
    /// pipelined run when shrink trials started after 1 s).
    static let initialGrowBackoff = 10
    static let initialShrinkBackoff = 50
    static let maxBackoff = 600

    init(maxLoops: Int) {
        self.maxLoops = max(1, maxLoops)
        activeLoops = 1
    }

    mutating func observe(_ sample: Sample) -> Decision {
        growing.windowPassed()
        shrinking.windowPassed()
        switch phase {
        case .trial(let previousLoops, let baseline, let settling, let grow):
            if settling > 0 {
                phase = .trial(previousLoops: previousLoops, baseline: baseline, settling: settling - 1, grow: grow)
                return .stay
            }
            phase = .steady
            let kept = sample.commandsPerSecond >= baseline * (grow ? Self.requiredGain : Self.toleratedLoss)
            if grow {
                Self.judged(&growing, other: &shrinking, kept: kept)
            } else {
                Self.judged(&shrinking, other: &growing, kept: kept)
            }
            return kept ? .stay : set(previousLoops)
        case .steady:
            guard sample.commandsPerSecond >= Self.minimumLoad else {
                // Idle or nearly: one loop serves it, and the next burst
                // starts from a fresh search.
                growing.reset()
                shrinking.reset()
                return activeLoops > 1 ? set(1) : .stay
            }
            if activeLoops < maxLoops, growing.wait == 0, sample.busiestLoopUtilization >= Self.saturated,
               sample.idleCores >= Self.spareCores {
                return startTrial(loops: activeLoops + 1, baseline: sample.commandsPerSecond, grow: true)
            }
            if activeLoops > 1, shrinking.wait == 0 {
                return startTrial(loops: activeLoops - 1, baseline: sample.commandsPerSecond, grow: false)
            }
            return .stay
        }
    }

    private static func judged(_ tried: inout Direction, other: inout Direction, kept: Bool) {
        if kept {
            tried.kept()
            other.postpone()
        } else {
            tried.failed()
        }
    }

    private mutating func startTrial(loops: Int, baseline: Double, grow: Bool) -> Decision {
        phase = .trial(previousLoops: activeLoops, baseline: baseline, settling: Self.settleWindows, grow: grow)
        return set(loops)
    }

    private mutating func set(_ loops: Int) -> Decision {
        activeLoops = loops
        return .use(loops: loops)
    }
}
