import Synchronization

/// Counters of what the store decided, for dashboards (the server exports them).
public final class IdempotencyMetrics: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var acquired = 0
        public var replayed = 0
        public var inProgressConflicts = 0
        public var mismatches = 0
        public var takeovers = 0
        public var leaseLost = 0
        public var completed = 0
        public var aborted = 0
        public var forgotten = 0
    }

    let acquired = Atomic<Int>(0)
    let replayed = Atomic<Int>(0)
    let inProgressConflicts = Atomic<Int>(0)
    let mismatches = Atomic<Int>(0)
    let takeovers = Atomic<Int>(0)
    let leaseLost = Atomic<Int>(0)
    let completed = Atomic<Int>(0)
    let aborted = Atomic<Int>(0)
    let forgotten = Atomic<Int>(0)

    public init() {}

    public var snapshot: Snapshot {
        Snapshot(acquired: acquired.load(ordering: .relaxed), replayed: replayed.load(ordering: .relaxed),
                 inProgressConflicts: inProgressConflicts.load(ordering: .relaxed),
                 mismatches: mismatches.load(ordering: .relaxed), takeovers: takeovers.load(ordering: .relaxed),
                 leaseLost: leaseLost.load(ordering: .relaxed), completed: completed.load(ordering: .relaxed),
                 aborted: aborted.load(ordering: .relaxed), forgotten: forgotten.load(ordering: .relaxed))
    }

    enum Counter {
        case acquired, replayed, inProgressConflict, mismatch, takeover, leaseLost, completed, aborted, forgotten
    }

    func count(_ counter: Counter) {
        switch counter {
        case .acquired: acquired.add(1, ordering: .relaxed)
        case .replayed: replayed.add(1, ordering: .relaxed)
        case .inProgressConflict: inProgressConflicts.add(1, ordering: .relaxed)
        case .mismatch: mismatches.add(1, ordering: .relaxed)
        case .takeover: takeovers.add(1, ordering: .relaxed)
        case .leaseLost: leaseLost.add(1, ordering: .relaxed)
        case .completed: completed.add(1, ordering: .relaxed)
        case .aborted: aborted.add(1, ordering: .relaxed)
        case .forgotten: forgotten.add(1, ordering: .relaxed)
        }
    }
}
