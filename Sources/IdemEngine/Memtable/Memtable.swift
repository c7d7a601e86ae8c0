import Synchronization

/// The newest version of every recently written key.
///
/// Concurrency design: one writer at a time (the engine's commit path
/// serialises all writes), any number of concurrent readers. A reader-writer
/// lock separates them; the write lock is held only for in-memory updates
/// (never across I/O), and a whole batch is applied under one acquisition,
/// so readers see a batch entirely or not at all. Entries are immutable, so
/// a reader may keep an entry after the lock is released.
///
/// Order on demand: a write goes into the hash index only, which answers
/// point lookups and owns the entries. Key order is needed by a flush (once,
/// after the memtable is sealed: `allEntries` sorts) and by scans; the first
/// scan builds the radix tree from the index, and from then on every write
/// goes into both. Why: the tree insert was the largest single cost of a
/// put (a node per key byte past shared prefixes, a cache miss at each:
/// 19 % of an embedded fill's writing thread, with its allocations and
/// reference counting about a quarter), for an order most memtables are
/// never asked for before their flush.
///
/// Invariants: for each key the index holds the entry with the highest
/// sequence number applied so far (tombstones included: a deletion must
/// shadow older versions that later live in SSTables). When `tree` exists
/// it holds exactly the index's entries — it is built from the index and
/// then changed under the same write lock.
final class Memtable: Sendable {
    private let lock = ReadWriteLock()
    // Guarded by `lock` (which is what keeps accesses apart: the runtime's
    // exclusivity checks, a thread-local lookup per access, are left out).
    /// Point lookups, and the owner of every entry.
    @exclusivity(unchecked) nonisolated(unsafe) private var index: MemtableIndex
    /// Key order, once a scan has asked for it.
    @exclusivity(unchecked) nonisolated(unsafe) private var tree: AdaptiveRadixTree<VersionedEntry>?
    @exclusivity(unchecked) nonisolated(unsafe) private var footprint = 0
    /// How many applies have finished, bumped inside the write lock. A
    /// reader that reads it before a lookup, and finds it unchanged at a
    /// point where no apply can be running, knows its lookup still holds
    /// (the commit pipeline checks this under its lock, which every apply
    /// takes).
    private let applies = Atomic<UInt64>(0)
    /// The index's `probeHint`, kept current under the write lock (it
    /// changes only when the index grows), so that `prefetch` can run
    /// without the lock: a pipelined batch's prefetches would otherwise
    /// take it once more per key.
    private let probeHint: Atomic<UInt>

    /// `memtableSize`: the bytes at which the memtable will be sealed; the
    /// hash index starts large enough for that many small entries, so that
    /// it never rehashes on the way (a rehash of a large index is a pause
    /// for every reader and writer, and slows WAL replay).
    init(sizedFor memtableSize: Int = 0) {
        index = MemtableIndex(capacity: MemtableIndex.capacity(forBytes: memtableSize))
        probeHint = Atomic(index.probeHint)
    }

    /// Backs the index with writable pages now (a memtable made ahead of
    /// the seal that installs it: see `CommitPipeline.prepareMemtable`).
    func prefault() {
        lock.withReadLock { index.prefault() }
    }

    /// Where the index's slots lie, for `MemtableIndex.prefetch(hint:hash:)`
    /// (see `ReadPrefetcher`). Read once per batch of keys: it shares a
    /// cache line with what every apply writes.
    var slotsHint: UInt { probeHint.load(ordering: .relaxed) }

    /// Whether the published hint is the index's own (it must be once no
    /// apply is running; the tests check it through growth).
    var probeHintIsCurrent: Bool {
        lock.withReadLock { probeHint.load(ordering: .relaxed) == index.probeHint }
    }

    func get(_ key: UnsafeRawBufferPointer) -> VersionedEntry? {
        let hash = Hash64.hash(key)
        return lock.withReadLock { index.find(key, hash: hash) }
    }

    func get(_ key: [UInt8]) -> VersionedEntry? {
        key.withUnsafeBytes { get($0) }
    }

    /// Applies entries in order, atomically with respect to readers.
    func apply<Entries: Sequence<VersionedEntry>>(_ entries: Entries) {
        lock.withWriteLock {
            for entry in entries { insertLocked(entry) }
            applies.add(1, ordering: .releasing)
        }
    }

    func apply(_ entry: VersionedEntry) {
        lock.withWriteLock {
            insertLocked(entry)
            applies.add(1, ordering: .releasing)
        }
    }

    /// See `applies`.
    var applyCount: UInt64 { applies.load(ordering: .acquiring) }

    private func insertLocked(_ entry: VersionedEntry) {
        footprint += entry.approximateFootprint
        let capacity = index.capacity
        if let previous = index.insert(entry, hash: entry.withKey { Hash64.hash($0) }) {
            footprint -= previous.approximateFootprint
        }
        if index.capacity != capacity { probeHint.store(index.probeHint, ordering: .relaxed) }
        _ = tree?.insert(entry)
    }

    /// Up to `limit` entries (tombstones and expired ones included: the
    /// caller filters) whose keys start with `prefix`, from `lowerBound` on,
    /// in key order. The first call builds the tree (under the write lock,
    /// a pass over every entry); later writes keep it.
    func entries(prefix: [UInt8], from lowerBound: [UInt8]? = nil, limit: Int = .max) -> [VersionedEntry] {
        var result: [VersionedEntry] = []
        func collect(_ tree: borrowing AdaptiveRadixTree<VersionedEntry>) {
            tree.forEach(prefix: prefix, from: lowerBound) { entry in
                result.append(entry)
                return result.count < limit
            }
        }
        let ordered = lock.withReadLock { () -> Bool in
            guard let tree else { return false }
            collect(tree)
            return true
        }
        if ordered { return result }
        lock.withWriteLock {
            if tree == nil {
                var built = AdaptiveRadixTree<VersionedEntry>()
                index.forEach { _ = built.insert($0) }
                tree = built
            }
            collect(tree!)
        }
        return result
    }

    /// Every entry in key order: for salvage's rewrite (before any writer).
    func allEntries() -> [VersionedEntry] {
        withEntriesInKeyOrder { $0.map { $0.takeUnretainedValue() } }
    }

    /// Calls `body` with every entry in key order, unretained. For a
    /// memtable that takes no more writes (a sealed one; salvage's before
    /// any writer): only a write replaces an entry, so the memtable keeps
    /// every one alive for as long as it lives, and `body` runs outside
    /// the lock (a scan building the tree meanwhile is not held up by a
    /// flush). Sorts the index's entries unless a scan built the tree.
    func withEntriesInKeyOrder<R, E: Error>(_ body: ([Unmanaged<VersionedEntry>]) throws(E) -> R) throws(E) -> R {
        let entries: [Unmanaged<VersionedEntry>] = lock.withReadLock {
            guard let tree else { return KeyOrder.sorted(index.unretainedEntries()) }
            var inTree: [Unmanaged<VersionedEntry>] = []
            inTree.reserveCapacity(tree.count)
            tree.forEach(prefix: [], from: nil) { entry in
                inTree.append(Unmanaged.passUnretained(entry))
                return true
            }
            return inTree
        }
        return try withExtendedLifetime(self) { () throws(E) -> R in try body(entries) }
    }

    var count: Int { lock.withReadLock { index.count } }

    /// Approximate bytes held, for flush decisions and statistics.
    var approximateBytes: Int { lock.withReadLock { footprint } }
}
