import CIdemHardware

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
    /// Keeps alive everything the addresses below point into.
    private let view: ReadView
    /// The memtables' `slotsHint`s, active first.
    private var memtables: InlineArray<3, UInt> = .init(repeating: 0)
    private var memtableCount = 0
    /// The newest tables' loads: four at most, since a lookup stops at the
    /// first table holding the key, and loads beyond what a core keeps in
    /// flight (ten or so) only queue behind the rest of the batch's.
    private var tables: InlineArray<4, TableLoads> = .init(repeating: TableLoads())
    private var tableCount = 0

    /// Reads every address once, here: per key, reading them through the
    /// view would touch reference counts and a memtable's line that the
    /// other event loops write.
    init(view: ReadView) {
        self.view = view
        memtables[0] = view.active.slotsHint
        memtableCount = 1
        for sealed in view.sealed.prefix(memtables.count - 1) {
            memtables[memtableCount] = sealed.memtable.slotsHint
            memtableCount += 1
        }
        for table in view.version.tables.prefix(tables.count) {
            tables[tableCount] = table.reader.firstLoads
            tableCount += 1
        }
    }

    /// Starts loading what a lookup of `key` reads first.
    public func prefetch(_ key: UnsafeRawBufferPointer) {
        let hash = Hash64.hash(key)
        for index in 0..<memtableCount { MemtableIndex.prefetch(hint: memtables[index], hash: hash) }
        for index in 0..<tableCount { tables[index].prefetch(hash: hash) }
    }
}

/// Where a table's point lookup loads first: the filter block for the key's
/// hash and the point-index slot its probe starts at. Addresses as
/// integers, only ever prefetched, never dereferenced (a prefetch of any
/// address is harmless); valid while the table's reader lives.
struct TableLoads: Sendable {
    var filterBlocks: (address: UInt, count: Int) = (0, 0)
    var pointSlots: (address: UInt, count: Int) = (0, 0)

    @inline(__always)
    func prefetch(hash: UInt64) {
        if filterBlocks.count > 0 {
            let block = filterBlocks.address &+ UInt(BloomFilter.blockIndex(hash, blockCount: filterBlocks.count) &* 64)
            idem_prefetch(UnsafeRawPointer(bitPattern: block))
            idem_prefetch(UnsafeRawPointer(bitPattern: block &+ 63))
        }
        if pointSlots.count > 0 {
            let slot = pointSlots.address &+ UInt(PointIndex.home(hash, slotCount: pointSlots.count) &* 8)
            idem_prefetch(UnsafeRawPointer(bitPattern: slot))
        }
    }
}
