/// Merges tables of one partition into one table.
///
/// Strategy: size-tiered within a partition (`CompactionPicker` chooses
/// the tables). Idempotency data is written once, read a few times and
/// then expires with its whole partition, so rewriting it level by level
/// (leveled compaction) would spend write bandwidth on data about to be
/// deleted for free. A partition's hot tables are merged in runs of
/// similar size, once there are enough of them to slow reads
/// (`EngineOptions.compactionTrigger`), and aged hot tables are merged into
/// the cold tier with stronger compression. Compaction never crosses
/// partitions, so it can never break the placement rule.
///
/// What a merge drops: versions shadowed by a newer version of the same key
/// among the inputs; and a *dead* newest version (a tombstone, or an entry
/// already expired) when no table outside the inputs, in this partition or
/// an earlier one, may hold an older version of its key (older versions
/// live only there, by the placement rule).
struct Compaction {
    let versions: VersionSet
    let inputs: [LiveTable]
    let partitionEnd: Int64
    let outputTier: Tier
    let options: TableOptions
    let now: Int64

    /// Keys merged between calls to `run`'s `pause`: a few milliseconds.
    static let pauseInterval = 4096

    struct Outcome {
        var edit: VersionEdit
        var added: [LiveTable]
        var removed: [LiveTable]
        var entriesRead = 0
        var entriesWritten = 0
        var bytesRead: UInt64 = 0
        var bytesWritten: UInt64 = 0
    }

    /// Merges the inputs; calls `pause` every `pauseInterval` keys, where
    /// the caller may do more urgent work (a flush) on this thread.
    func run(pause: () throws(EngineError) -> Void = {}) throws(EngineError) -> Outcome {
        let version = versions.current
        let excluded = Set(inputs.map(\.number))
        var iterators = inputs.map { $0.reader.makeIterator(fillingCache: false) }
        for index in iterators.indices { try iterators[index].seekToFirst() }

        var outcome = Outcome(edit: VersionEdit(), added: [], removed: inputs)
        outcome.bytesRead = inputs.reduce(0) { $0 + $1.metadata.size }
        let writer = try TableFileWriter(versions: versions, partitionEnd: partitionEnd, tier: outputTier,
                                         options: options, createdAt: now)
        do throws(EngineError) {
            var keysSincePause = 0
            while true {
                keysSincePause += 1
                if keysSincePause == Self.pauseInterval {
                    keysSincePause = 0
                    try pause()
                }
                // The smallest current key, and the newest entry for it.
                // (By index: a `for iterator in iterators` copies each
                // iterator — its block and key references — per key.)
                var smallest = -1
                for index in iterators.indices where iterators[index].isValid {
                    if smallest < 0 || ByteOrder.compare(iterators[index].key, iterators[smallest].key) < 0 { smallest = index }
                }
                guard smallest >= 0 else { break }
                let key = iterators[smallest].key
                var newest: VersionedEntry?
                for index in iterators.indices
                where iterators[index].isValid && ByteOrder.compare(iterators[index].key, key) == 0 {
                    let entry = try iterators[index].entry()
                    outcome.entriesRead += 1
                    if entry.sequence > (newest?.sequence ?? 0) { newest = entry }
                    try iterators[index].next()
                }
                guard let entry = newest else { continue }
                if entry.isTombstone || entry.isExpired(at: now) {
                    let needed = try entry.withKeyBytes { raw throws(EngineError) in
                        try version.mayHoldOlderVersion(raw, upTo: partitionEnd, excluding: excluded)
                    }
                    if !needed { continue }
                }
                try writer.add(entry)
                outcome.entriesWritten += 1
            }
            if writer.entryCount > 0 {
                let table = try TableFileWriter.finishAll([writer])[0]
                outcome.added = [table]
                outcome.bytesWritten = table.metadata.size
                let folder = outputTier == .hot ? versions.directory : versions.coldDirectory
                do throws(IOFailure) { try versions.fileSystem.syncDirectory(folder) } catch { throw .io(error) }
            } else {
                writer.abandon()
            }
        } catch {
            writer.abandon()
            throw error
        }
        outcome.edit.deletedFiles = inputs.map(\.number)
        outcome.edit.addedFiles = outcome.added.map(\.metadata)
        return outcome
    }
}
