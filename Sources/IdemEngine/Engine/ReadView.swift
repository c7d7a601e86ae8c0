import Synchronization

/// A memtable that no longer takes writes, waiting to be flushed.
final class SealedMemtable: Sendable {
    let memtable: Memtable
    /// WAL segments numbered below this hold only this memtable's entries
    /// (or older ones): once it is flushed they can go.
    let firstUncoveredSegment: UInt64

    init(memtable: Memtable, firstUncoveredSegment: UInt64) {
        self.memtable = memtable
        self.firstUncoveredSegment = firstUncoveredSegment
    }
}

/// Everything a read consults, swapped as one (RocksDB's "super version"):
/// the active memtable, sealed memtables newest first, and the version of
/// live tables.
final class ReadView: Sendable {
    let active: Memtable
    let sealed: [SealedMemtable]
    let version: Version

    init(active: Memtable, sealed: [SealedMemtable], version: Version) {
        self.active = active
        self.sealed = sealed
        self.version = version
    }

    /// The newest entry for `key` across every source.
    func lookup(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry? {
        if let entry = memtableEntry(key) { return entry }
        return try version.get(key)
    }

    /// The newest entry for `key` in the memtables alone; nil when none
    /// holds it (the tables may). Every memtable entry is newer than every
    /// table entry of the same key: memtables reach tables in seal order.
    func memtableEntry(_ key: UnsafeRawBufferPointer) -> VersionedEntry? {
        if let entry = active.get(key) { return entry }
        for memtable in sealed {
            if let entry = memtable.memtable.get(key) { return entry }
        }
        return nil
    }

    /// `lookup` without touching the disk; nil when a table block would be read.
    func lookupCached(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry?? {
        if let entry = active.get(key) { return .some(entry) }
        for memtable in sealed {
            if let entry = memtable.memtable.get(key) { return .some(entry) }
        }
        return try version.getCached(key)
    }
}

/// Holds the current `ReadView`.
///
/// Invariant: a new memtable becomes active here before any write is
/// applied to it, and a flushed memtable leaves only in the same swap that
/// brings in the tables holding its entries — so no read ever misses a
/// write it should see.
final class ReadViews: Sendable {
    private let view: Mutex<ReadView>
    /// How many times the view was replaced; bumped inside the mutex with
    /// each replacement. A reader that reads it, then `current`, and later
    /// finds it unchanged knows that view is still current.
    private let swaps = Atomic<UInt64>(0)

    init(_ initial: ReadView) {
        view = Mutex(initial)
    }

    var current: ReadView { view.withLock { $0 } }

    /// See `swaps`.
    var swapCount: UInt64 { swaps.load(ordering: .acquiring) }

    func lookup(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry? {
        try current.lookup(key)
    }

    func lookup(_ key: [UInt8]) throws(EngineError) -> VersionedEntry? {
        let view = current
        var result: Result<VersionedEntry?, EngineError> = .success(nil)
        key.withUnsafeBytes { raw in
            result = Result { () throws(EngineError) -> VersionedEntry? in try view.lookup(raw) }
        }
        return try result.get()
    }

    /// Makes `active` the memtable that takes writes; the previous one is sealed.
    func seal(_ sealed: SealedMemtable, replacement active: Memtable) {
        view.withLock { view in
            view = ReadView(active: active, sealed: [sealed] + view.sealed, version: view.version)
            swaps.add(1, ordering: .releasing)
        }
    }

    /// Installs a new version, dropping `flushed` from the sealed memtables.
    func install(_ version: Version, flushed: SealedMemtable? = nil) {
        view.withLock { view in
            view = ReadView(active: view.active, sealed: view.sealed.filter { $0 !== flushed }, version: version)
            swaps.add(1, ordering: .releasing)
        }
    }
}
