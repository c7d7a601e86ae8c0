import Synchronization

/// The newest version of every recently written key, in key order.
///
/// Concurrency design: one writer at a time (the engine's commit path
/// serialises all writes), any number of concurrent readers. A reader-writer
/// lock separates them; the write lock is held only for in-memory tree
/// updates (never across I/O), and a whole batch is applied under one
/// acquisition, so readers see a batch entirely or not at all. Entries are
/// immutable, so a reader may keep an entry after the lock is released.
///
/// Invariant: for each key the tree holds the entry with the highest
/// sequence number applied so far (tombstones included: a deletion must
/// shadow older versions that later live in SSTables), and the hash index
/// points at that same entry — both change under one write lock.
final class Memtable: Sendable {
    private let lock = ReadWriteLock()
    // Guarded by `lock` (which is what keeps accesses apart: the runtime's
    // exclusivity checks, a thread-local lookup per access, are left out).
    @exclusivity(unchecked) nonisolated(unsafe) private var tree = AdaptiveRadixTree<VersionedEntry>()
    /// Point lookups; the tree serves ordered iteration.
    @exclusivity(unchecked) nonisolated(unsafe) private var index: MemtableIndex
    @exclusivity(unchecked) nonisolated(unsafe) private var footprint = 0
    /// How many applies have finished, bumped inside the write lock. A
    /// reader that reads it before a lookup, and finds it unchanged at a
    /// point where no apply can be running, knows its lookup still holds
    /// (the commit pipeline checks this under its lock, which every apply
    /// takes).
    private let applies = Atomic<UInt64>(0)

    /// `memtableSize`: the bytes at which the memtable will be sealed; the
    /// hash index starts large enough for that many small entries, so that
    /// it never rehashes on the way (a rehash of a large index is a pause
    /// for every reader and writer, and slows WAL replay).
    init(sizedFor memtableSize: Int = 0) {
        index = MemtableIndex(capacity: MemtableIndex.capacity(forBytes: memtableSize))
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
        let previous = tree.insert(entry)
        if let previous { footprint -= previous.approximateFootprint }
        index.insert(entry, hash: entry.withKey { Hash64.hash($0) }, replacing: previous)
    }

    /// Up to `limit` entries (tombstones and expired ones included: the
    /// caller filters) whose keys start with `prefix`, from `lowerBound` on.
    func entries(prefix: [UInt8], from lowerBound: [UInt8]? = nil, limit: Int = .max) -> [VersionedEntry] {
        var result: [VersionedEntry] = []
        lock.withReadLock {
            tree.forEach(prefix: prefix, from: lowerBound) { entry in
                result.append(entry)
                return result.count < limit
            }
        }
        return result
    }

    /// Every entry in key order, for checkpointing.
    func allEntries() -> [VersionedEntry] {
        entries(prefix: [])
    }

    var count: Int { lock.withReadLock { tree.count } }

    /// Approximate bytes held, for flush decisions and statistics.
    var approximateBytes: Int { lock.withReadLock { footprint } }
}
