import CIdemHardware

/// Writes a sealed memtable out as tables, one per time partition.
///
/// Placement (the rule `Version` documents): an entry goes to the later
/// of its natural partition (by expiry) and the latest partition already
/// holding an older version of its key. A *dead* entry — a tombstone, or
/// one already expired — needs no table when no table holds its key at
/// all (nothing to shadow); otherwise it is written like any other, since
/// an older version in any partition, even its own, may expire later.
struct Flush {
    let versions: VersionSet
    let layout: PartitionLayout
    let options: TableOptions
    let now: Int64

    struct Outcome {
        var edit: VersionEdit
        var added: [LiveTable]
        var entriesWritten = 0
        var entriesDropped = 0
    }

    /// How many entries ahead of the one being written a flush prefetches:
    /// far enough for the load to arrive, near enough to stay cached.
    static let prefetchDistance = 8

    func run(_ sealed: SealedMemtable) throws(EngineError) -> Outcome {
        let version = versions.current
        var writers: [Int64: TableFileWriter] = [:]
        var outcome = Outcome(edit: VersionEdit(), added: [])
        var maxSequence: UInt64 = 0
        do throws(EngineError) {
            try sealed.memtable.withEntriesInKeyOrder { entries throws(EngineError) in
                for position in entries.indices {
                    // Key order is not allocation order: each entry is a
                    // cache miss, most of a flush's own time. Ask for one a
                    // few entries ahead (its header and key, then its value).
                    if position + Self.prefetchDistance < entries.count {
                        let ahead = entries[position + Self.prefetchDistance].toOpaque()
                        idem_prefetch(ahead)
                        idem_prefetch(ahead + 64)
                    }
                    let entry = entries[position].takeUnretainedValue()
                    maxSequence = max(maxSequence, entry.sequence)
                    let natural = entry.isTombstone ? nil : layout.naturalEnd(forExpiry: entry.expiresAt)
                    // A dead entry (tombstone or expired) must be kept while
                    // any table holds an older version of its key — in any
                    // partition, its own included: that version may outlive it.
                    let dead = entry.isTombstone || entry.isExpired(at: now)
                    let holder = try entry.withKeyBytes { key throws(EngineError) in
                        try version.latestPartitionHolding(key, after: dead ? .min : natural!)
                    }
                    if dead && holder == nil {
                        outcome.entriesDropped += 1
                        continue
                    }
                    let target = max(natural ?? .min, holder ?? .min)
                    let writer: TableFileWriter
                    if let existing = writers[target] {
                        writer = existing
                    } else {
                        writer = try TableFileWriter(versions: versions, partitionEnd: target, tier: .hot,
                                                     options: options, createdAt: now)
                        writers[target] = writer
                    }
                    try writer.add(entry)
                    outcome.entriesWritten += 1
                }
            }
            outcome.added = try TableFileWriter.finishAll(writers.values.sorted { $0.partitionEnd < $1.partitionEnd })
            if !outcome.added.isEmpty {
                do throws(IOFailure) { try versions.fileSystem.syncDirectory(versions.directory) } catch { throw .io(error) }
            }
        } catch {
            for writer in writers.values { writer.abandon() }
            throw error
        }
        outcome.edit.addedFiles = outcome.added.map(\.metadata)
        outcome.edit.logNumber = sealed.firstUncoveredSegment
        outcome.edit.lastSequence = maxSequence
        return outcome
    }
}
