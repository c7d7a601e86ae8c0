/// A table file that belongs to the current (or an older) version.
final class LiveTable: Sendable {
    let metadata: FileMetadata
    let reader: TableReader

    init(metadata: FileMetadata, reader: TableReader) {
        self.metadata = metadata
        self.reader = reader
    }

    var number: UInt64 { metadata.number }
    var partitionEnd: Int64 { metadata.partitionEnd }

    /// The table's entry for `key`, if any (see `TableReader.get`).
    func get(_ key: UnsafeRawBufferPointer, hash: UInt64) throws(EngineError) -> VersionedEntry? {
        try reader.get(key, hash: hash)
    }

    /// `get` without touching the disk: nil when a block would be read.
    func getCached(_ key: UnsafeRawBufferPointer, hash: UInt64) throws(EngineError) -> VersionedEntry?? {
        try reader.getCached(key, hash: hash)
    }

    /// Whether the table holds an entry for `key`.
    func holds(_ key: UnsafeRawBufferPointer, hash: UInt64) throws(EngineError) -> Bool {
        try get(key, hash: hash) != nil
    }
}

/// An immutable set of live tables. Readers take the current version and
/// keep it as long as they read: its tables' files stay open (and readable
/// after they are unlinked) until the last reference goes — the reference
/// counting LevelDB does by hand, done here by ARC.
///
/// Invariant (the *placement rule*, kept by flush and compaction): every
/// entry lives in a partition whose end is at least the end of the
/// partition of every older version of its key. Dropping the partitions
/// that have ended, oldest first, therefore never uncovers an older
/// version: whatever shadowed it is dropped with or after it, and
/// whatever it shadows is dropped with or before it.
final class Version: Sendable {
    /// Every table, newest data first (by max sequence).
    let tables: [LiveTable]
    /// Tables grouped by partition end, ascending.
    let partitions: [(end: Int64, tables: [LiveTable])]

    init(tables: [LiveTable]) {
        self.tables = tables.sorted { $0.metadata.maxSequence > $1.metadata.maxSequence }
        var grouped: [Int64: [LiveTable]] = [:]
        for table in tables { grouped[table.partitionEnd, default: []].append(table) }
        partitions = grouped.keys.sorted().map { end in
            (end, grouped[end]!.sorted { $0.metadata.maxSequence > $1.metadata.maxSequence })
        }
    }

    static let empty = Version(tables: [])

    /// The newest entry for `key` in any table.
    func get(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry? {
        let hash = Hash64.hash(key)
        var best: VersionedEntry?
        for table in tables {
            if let best, best.sequence > table.metadata.maxSequence { break }
            if let found = try table.get(key, hash: hash), found.sequence > (best?.sequence ?? 0) {
                best = found
            }
        }
        return best
    }

    /// `get` without touching the disk: nil when some table that may hold
    /// `key` would need a block read.
    func getCached(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry?? {
        let hash = Hash64.hash(key)
        var best: VersionedEntry?
        for table in tables {
            if let best, best.sequence > table.metadata.maxSequence { break }
            guard let found = try table.getCached(key, hash: hash) else { return nil }
            if let found, found.sequence > (best?.sequence ?? 0) { best = found }
        }
        return .some(best)
    }

    /// The latest partition end, greater than `after`, among tables that
    /// hold some version of `key`; nil when none does.
    func latestPartitionHolding(_ key: UnsafeRawBufferPointer, after: Int64) throws(EngineError) -> Int64? {
        let hash = Hash64.hash(key)
        for (end, tables) in partitions.reversed() {
            guard end > after else { break }
            for table in tables where try table.holds(key, hash: hash) { return end }
        }
        return nil
    }

    /// Whether a table not in `excluded`, in a partition ending at or before
    /// `end`, may hold an (older) version of `key`.
    func mayHoldOlderVersion(_ key: UnsafeRawBufferPointer, upTo end: Int64, excluding excluded: Set<UInt64>) throws(EngineError) -> Bool {
        let hash = Hash64.hash(key)
        for (partitionEnd, tables) in partitions {
            guard partitionEnd <= end else { break }
            for table in tables where !excluded.contains(table.number) {
                if try table.holds(key, hash: hash) { return true }
            }
        }
        return false
    }

    func tables(inPartition end: Int64) -> [LiveTable] {
        partitions.first { $0.end == end }?.tables ?? []
    }
}
