/// Starts the memory loads of a batch of point lookups before any of them
/// runs, so that their first cache misses overlap.
///
/// Why: a lookup is a chain of dependent loads — the memtable index's
/// slot, then the entry; a table's filter block and point-index slot,
/// then the data block — each a cache miss once the data outgrows the
/// CPU's caches, and no link can start before the one before it arrives.
/// Within one lookup that is latency the CPU sits out. Across a batch (a
/// client's pipelined requests, arriving in one read) the first links of
/// every lookup are known up front and can be in flight together, as
/// Redis 8 does for its dictionary. Only the first links: the rest depend
/// on what those hold.
///
/// A hint and nothing more: it changes no state and takes no lock but the
/// read view's; the lookups that follow are correct whether or not it ran,
/// and whether or not the view is still current when they do.
public struct ReadPrefetcher: Sendable {
    private let view: ReadView
    /// The active memtable's `slotsHint`, read once for the batch.
    private let activeSlots: UInt

    /// Tables per key whose filter block and point-index slot are loaded,
    /// newest first. A lookup stops at the first table holding the key,
    /// and loads beyond what a core keeps in flight (ten or so) only
    /// queue behind the rest of the batch's.
    static let maxTables = 4

    init(view: ReadView) {
        self.view = view
        activeSlots = view.active.slotsHint
    }

    /// Starts loading what a lookup of `key` reads first.
    public func prefetch(_ key: UnsafeRawBufferPointer) {
        let hash = Hash64.hash(key)
        MemtableIndex.prefetch(hint: activeSlots, hash: hash)
        for sealed in view.sealed { MemtableIndex.prefetch(hint: sealed.memtable.slotsHint, hash: hash) }
        for table in view.version.tables.prefix(Self.maxTables) { table.reader.prefetch(hash: hash) }
    }
}
