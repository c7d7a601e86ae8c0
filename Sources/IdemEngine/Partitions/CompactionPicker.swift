/// Chooses which tables of one partition and tier to merge: size-tiered,
/// as RocksDB's universal compaction picks sorted runs.
///
/// Why not merge every table of the partition once there are
/// `compactionTrigger` of them (what this replaced): a partition takes
/// writes for its whole width (an hour of keys with the same TTL), so its
/// merged table grows with every flush and each merge rewrote all of it —
/// for a partition that takes 500 flushes, 84 bytes written per byte
/// flushed, and a maintenance thread busy long enough to stall writers
/// behind unflushed memtables. Merging only tables of similar size rewrites
/// a byte about once per doubling of its table: ~6 bytes written per byte
/// flushed in the same simulation, with at most 7 tables per partition.
///
/// The rule, over the tables newest first: starting at some table, take
/// the next (older) table while it is no larger than `1 + sizeRatio` times
/// the bytes taken so far; a run of at least `width` tables is merged. The
/// first start (newest) that yields such a run wins, so fresh flushes merge
/// first and a large old table joins only once the newer data has grown to
/// its size. Should the sizes fall so that no run forms, a partition that
/// reaches `maxTables` merges its `width` newest tables anyway, which keeps
/// the tables a point lookup probes bounded.
///
/// Invariant: the run is contiguous in age (by newest sequence), so the
/// merged table's sequences never interleave with a table left out: every
/// left-out table is wholly older or wholly newer than the run's newest.
/// (Reads compare sequences, so this is not needed for correctness, but it
/// keeps `Version.get`'s early stop effective.)
struct CompactionPicker {
    /// The fewest tables merged at once (at least 2).
    let width: Int
    let sizeRatio: Double
    /// Past this many tables a merge happens whatever the sizes.
    var maxTables: Int { width * 4 }

    init(width: Int, sizeRatio: Double) {
        self.width = max(2, width)
        self.sizeRatio = sizeRatio.isFinite ? max(0, sizeRatio) : 0
    }

    /// The range of `sizes` (table sizes, newest first) to merge, or nil.
    func pick(sizesNewestFirst sizes: [UInt64]) -> Range<Int>? {
        guard sizes.count >= width else { return nil }
        for start in sizes.indices {
            guard sizes.count - start >= width else { break }
            var taken = Double(sizes[start])
            var end = start + 1
            while end < sizes.count, Double(sizes[end]) <= taken * (1 + sizeRatio) {
                taken += Double(sizes[end])
                end += 1
            }
            if end - start >= width { return start..<end }
        }
        return sizes.count >= maxTables ? 0..<width : nil
    }

    /// The tables to merge among `tables` (one partition and tier, newest
    /// first), or nil.
    func pick(_ tables: [LiveTable]) -> ArraySlice<LiveTable>? {
        pick(sizesNewestFirst: tables.map(\.metadata.size)).map { tables[$0] }
    }
}
