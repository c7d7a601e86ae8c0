import CIdemPosix
import Synchronization

/// How a spawned thread competes for the CPU with the threads that answer
/// requests (Linux; elsewhere every thread is scheduled alike).
enum ThreadPriority: Equatable, Sendable {
    /// On the path of an acknowledgement (group commit, periodic sync).
    case normal
    /// Work nobody waits for but through back-pressure, at nice 10: a
    /// tenth of a normal thread's share under contention. Its slices still
    /// delay a loop that wakes on its CPU, and the kernel does not place
    /// that wakeup elsewhere: the CPU counts as busy.
    case background
    /// SCHED_IDLE: the thread runs on CPU time no other thread wants, a
    /// waking normal thread preempts it at once, and the kernel places
    /// wakeups on its CPU as on an idle one. What background work should
    /// be while nothing waits for it (see `BoostablePriority`).
    case idle

    /// Gives `thread` (a Linux thread id of this process) this priority.
    /// Returns whether the kernel accepted it.
    @discardableResult
    func apply(toThread thread: Int32) -> Bool {
        #if os(Linux)
        switch self {
        case .normal: return idem_schedule_normal(thread, 0) == 0
        case .background: return idem_schedule_normal(thread, 10) == 0
        case .idle: return idem_schedule_idle(thread) == 0
        }
        #else
        return self == .normal
        #endif
    }

    /// Whether this process may move a thread from `.idle` back to
    /// `.background` — root, CAP_SYS_NICE, or an RLIMIT_NICE of 10 or
    /// more (systemd's `LimitNICE=`); an unprivileged process by default
    /// may not. Tried once, on a thread of its own, since a thread that
    /// tried and failed would stay idle.
    static let idleIsRevocable: Bool = {
        #if os(Linux)
        let probe = SchedulingProbe()
        spawnThread(name: "idem-sched-probe") {
            let thread = idem_gettid()
            probe.finish(ThreadPriority.idle.apply(toThread: thread) && ThreadPriority.background.apply(toThread: thread))
        }
        return probe.wait()
        #else
        return false
        #endif
    }()
}

/// The one answer of `idleIsRevocable`'s probe thread.
private final class SchedulingProbe: Sendable {
    private let lock = ConditionLock()
    nonisolated(unsafe) private var outcome: Bool?  // guarded by `lock`

    func finish(_ revocable: Bool) {
        lock.withLock {
            outcome = revocable
            lock.broadcast()
        }
    }

    func wait() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while outcome == nil { lock.wait() }
        return outcome ?? false
    }
}

/// How the engine's maintenance thread (flushes, merges, partition drops)
/// is scheduled while its work keeps up.
public enum MaintenancePriority: String, Sendable, CaseIterable {
    /// SCHED_IDLE, raised to nice 10 while flushes or merges fall behind
    /// (`BoostablePriority`) — where the process may raise it back
    /// (`ThreadPriority.idleIsRevocable`); elsewhere as `.low`.
    case idle
    /// Nice 10 throughout.
    case low
}

/// The priority of a background thread, raised while its work falls behind.
///
/// Why: at nice 10 a flush still took its slices from an event loop on the
/// same CPU. On the 2-vCPU machine of BENCHMARKS.md, with a client at
/// 40k requests/s, each flush of a 64 MB memtable held replies back by up
/// to 60 ms; at SCHED_IDLE the loops preempt it and the flush runs on what
/// they leave. What idle gives up is progress while the CPUs are busy —
/// under a saturating write load, or on a machine other work keeps busy,
/// an idle thread barely runs: sealed memtables pile up (memory, then
/// writers wait on them) and so do a partition's tables (every lookup
/// probes each one). So the engine `boost`s the thread to nice 10 (the
/// share it always had before) for as long as either falls behind, and
/// lets it `rest` once the work is caught up. Raising a thread out of
/// SCHED_IDLE needs privileges (sched(7)); where the process lacks them,
/// `resting` is `.background` and a boost changes nothing.
///
/// Invariants: once `attachCurrentThread` ran, the thread's kernel priority
/// is `.background` while any reason to boost holds and `resting`
/// otherwise; reasons and priority change together under `state`'s lock,
/// so a boost racing a rest leaves them agreeing. After
/// `detachCurrentThread` no thread id is kept: a later boost cannot reach
/// whichever thread reuses the id.
final class BoostablePriority: Sendable {
    /// What the thread is behind on.
    enum Reason: UInt8, Sendable {
        /// Sealed memtables wait for their flush.
        case flushes = 1
        /// A partition holds more tables than merges should leave.
        case merges = 2
    }

    let resting: ThreadPriority

    private struct State {
        var thread: Int32?
        /// The `Reason`s that hold, as a bit set.
        var reasons: UInt8 = 0
        var boosts = 0
    }

    private let state = Mutex(State())

    init(_ preference: MaintenancePriority) {
        resting = preference == .idle && ThreadPriority.idleIsRevocable ? .idle : .background
    }

    /// What the thread runs at when not boosted, as `MaintenancePriority`.
    var effectivePreference: MaintenancePriority { resting == .idle ? .idle : .low }

    var isBoosted: Bool { state.withLock { $0.reasons != 0 } }

    /// The Linux thread id of the attached thread, if one is attached.
    var threadID: Int32? { state.withLock { $0.thread } }

    /// Times the thread was raised.
    var boosts: Int { state.withLock { $0.boosts } }

    /// Called first thing on the thread whose priority this is.
    func attachCurrentThread() {
        #if os(Linux)
        let thread = idem_gettid()
        state.withLock { state in
            state.thread = thread
            (state.reasons != 0 ? ThreadPriority.background : resting).apply(toThread: thread)
        }
        #endif
    }

    /// Called last thing on that thread.
    func detachCurrentThread() {
        state.withLock { $0.thread = nil }
    }

    /// The thread's work falls behind: raise it (from any thread).
    func boost(_ reason: Reason) {
        guard resting == .idle else { return }
        state.withLock { state in
            let wasBoosted = state.reasons != 0
            state.reasons |= reason.rawValue
            guard !wasBoosted else { return }
            state.boosts += 1
            if let thread = state.thread { ThreadPriority.background.apply(toThread: thread) }
        }
    }

    /// Caught up on `reason`: back to `resting` unless another holds.
    func rest(_ reason: Reason) {
        state.withLock { state in
            guard state.reasons & reason.rawValue != 0 else { return }
            state.reasons &= ~reason.rawValue
            if state.reasons == 0, let thread = state.thread { resting.apply(toThread: thread) }
        }
    }
}
