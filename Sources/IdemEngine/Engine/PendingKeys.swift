import Synchronization

/// Which keys may have a commit in flight — accepted by the commit
/// pipeline (sequenced, in `overlay`) but not yet applied to the memtable —
/// readable without the commit lock.
///
/// A fixed table of counters indexed by a hash of the key: a commit adds
/// one to its key's counter for each operation as it queues it, and the
/// apply (or the failure) of its group takes it away again. A zero counter
/// therefore proves that no queued write touches the key; a non-zero one
/// only says one may (keys share counters), and the caller takes the lock.
///
/// Invariants:
/// - A counter is incremented under the commit lock, before the commit
///   returns, so a later read-modify-write on the same thread (the same
///   connection's next command) sees it.
/// - A counter is decremented only after the operation was applied to the
///   memtable (or failed), with release ordering: a reader that loads zero
///   (acquiring) and then reads the memtable sees the applied entry.
/// - Every increment has exactly one decrement (the group's apply or its
///   failure); the counters never underflow.
final class PendingKeys: @unchecked Sendable {
    // @unchecked: the pointer is written only through atomics, allocated
    // once and freed in deinit.
    private let counters: UnsafeMutablePointer<Atomic<UInt32>>
    private static let count = 4096

    init() {
        counters = .allocate(capacity: Self.count)
        for index in 0..<Self.count { (counters + index).initialize(to: Atomic(0)) }
    }

    deinit {
        counters.deinitialize(count: Self.count)
        counters.deallocate()
    }

    /// The counter `key` maps to.
    @inline(__always)
    static func slot(_ key: [UInt8]) -> Int {
        key.withUnsafeBytes { Int(truncatingIfNeeded: Hash64.hash($0) & UInt64(count - 1)) }
    }

    func add(_ key: [UInt8]) {
        counters[Self.slot(key)].wrappingAdd(1, ordering: .relaxed)
    }

    func remove(_ key: [UInt8]) {
        counters[Self.slot(key)].wrappingSubtract(1, ordering: .releasing)
    }

    /// True when no queued write can touch a key mapping to `slot`.
    func isClear(_ slot: Int) -> Bool {
        counters[slot].load(ordering: .acquiring) == 0
    }
}
