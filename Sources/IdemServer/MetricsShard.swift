import Atomics

/// The per-command and traffic counters of one event loop.
///
/// Why shards: every command bumps several counters. Shared by the event
/// loops, each bump is a read-modify-write on a cache line the other core
/// just wrote — on this kind of machine that cost more than the counting.
/// Each loop counts in its own shard; `/metrics` and INFO add the shards.
///
/// Invariant: every slot is read and written only through `UnsafeAtomic`
/// (relaxed: counters need no ordering), so the class is safe to share;
/// `storage` lives as long as the shard.
final class MetricsShard: @unchecked Sendable {
    /// Upper bounds of the latency buckets, in nanoseconds (then +Inf).
    static let bucketBounds: [Int] = [50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000, 5_000_000,
                                      10_000_000, 25_000_000, 100_000_000, 250_000_000, 1_000_000_000]

    enum Total: Int, CaseIterable {
        case bytesIn, bytesOut, keyspaceHits, keyspaceMisses, commands, errorReplies
    }

    /// Slots per command: ok, error, latency sum (ns), then the buckets
    /// with +Inf last.
    static let slotsPerCommand = 3 + bucketBounds.count + 1

    let commandCount: Int
    private let storage: UnsafeMutablePointer<UnsafeAtomic<Int>.Storage>
    private let slotCount: Int

    /// `commandCount` includes the slot for unknown commands.
    init(commandCount: Int) {
        self.commandCount = commandCount
        slotCount = Total.allCases.count + commandCount * Self.slotsPerCommand
        storage = .allocate(capacity: slotCount)
        storage.initialize(repeating: UnsafeAtomic<Int>.Storage(0), count: slotCount)
    }

    deinit {
        storage.deinitialize(count: slotCount)
        storage.deallocate()
    }

    private func slot(_ index: Int) -> UnsafeAtomic<Int> {
        precondition(index >= 0 && index < slotCount)
        return UnsafeAtomic(at: storage + index)
    }

    func add(_ total: Total, _ amount: Int = 1) {
        slot(total.rawValue).wrappingIncrement(by: amount, ordering: .relaxed)
    }

    func load(_ total: Total) -> Int {
        slot(total.rawValue).load(ordering: .relaxed)
    }

    /// `command` is a `Command.index`, or `commandCount - 1` for unknown.
    func recordCommand(_ command: Int, failed: Bool, nanoseconds: Int) {
        let base = Total.allCases.count + command * Self.slotsPerCommand
        slot(base + (failed ? 1 : 0)).wrappingIncrement(ordering: .relaxed)
        slot(base + 2).wrappingIncrement(by: nanoseconds, ordering: .relaxed)
        let bucket = Self.bucketBounds.firstIndex { nanoseconds <= $0 } ?? Self.bucketBounds.count
        slot(base + 3 + bucket).wrappingIncrement(ordering: .relaxed)
        add(.commands)
        if failed { add(.errorReplies) }
    }

    /// One command's figures.
    struct CommandFigures {
        var ok = 0
        var errors = 0
        var nanoseconds = 0
        /// Per bucket (not cumulative), +Inf last.
        var buckets = [Int](repeating: 0, count: MetricsShard.bucketBounds.count + 1)

        mutating func add(_ other: CommandFigures) {
            ok += other.ok
            errors += other.errors
            nanoseconds += other.nanoseconds
            for index in buckets.indices { buckets[index] += other.buckets[index] }
        }
    }

    func command(_ command: Int) -> CommandFigures {
        let base = Total.allCases.count + command * Self.slotsPerCommand
        var figures = CommandFigures(ok: slot(base).load(ordering: .relaxed), errors: slot(base + 1).load(ordering: .relaxed),
                                     nanoseconds: slot(base + 2).load(ordering: .relaxed))
        for index in figures.buckets.indices { figures.buckets[index] = slot(base + 3 + index).load(ordering: .relaxed) }
        return figures
    }
}
