import Synchronization

/// Background work on the table set: flushing sealed memtables, dropping
/// partitions that have ended, moving aged tables to the cold tier, and
/// merging a partition's tables. One step at a time, on one thread — which
/// bounds compaction I/O to a single stream and makes every change to the
/// version set sequential.
///
/// Failure policy: writing a table can fail and be retried later (the
/// memtable stays sealed, its WAL segments stay); failing to record an edit
/// in the manifest leaves the table set on disk unknown, so writes stop
/// (`CommitPipeline.enterReadOnly`), like a failed WAL sync.
final class Maintenance: Sendable {
    /// What statistics read, apart from `workLock`: a run holds that for
    /// as long as a merge takes (seconds), and `INFO` or a metrics scrape
    /// must not wait for it.
    private struct Published {
        /// Finished runs.
        var totals = MaintenanceReport()
        /// The running run's work so far (a run flushes memtable after
        /// memtable while writers wait on them: its progress must show).
        var current = MaintenanceReport()
        var lastError: EngineError?
        var compacting = false
    }

    /// Serialises runs (the background thread and `Engine.runMaintenance`).
    private let workLock = ConditionLock()
    nonisolated(unsafe) private let versions: VersionSet // used under `workLock` only
    private let signal = ConditionLock()
    nonisolated(unsafe) private var stopping = false // guarded by `signal`
    nonisolated(unsafe) private var running = false // guarded by `signal`
    private let views: ReadViews
    private let options: EngineOptions
    private let directory: String
    private let layout: PartitionLayout
    private let pipeline: Mutex<CommitPipeline?> = Mutex(nil)
    private let published = Mutex(Published())
    /// The background thread's priority: raised while sealed memtables
    /// wait (`flushesFallBehind`, until they are flushed) and while a
    /// partition's tables pile up (`compact`, for its merges).
    let priority: BoostablePriority

    init(versions: VersionSet, views: ReadViews, options: EngineOptions, directory: String) {
        self.versions = versions
        self.views = views
        self.options = options
        self.directory = directory
        self.layout = PartitionLayout(widthMilliseconds: options.partitionWidth)
        self.priority = BoostablePriority(options.maintenancePriority)
    }

    /// Connects the pipeline (created after this) and starts the thread.
    func start(pipeline: CommitPipeline) {
        self.pipeline.withLock { $0 = pipeline }
        guard options.backgroundMaintenance else { return }
        signal.withLock { running = true }
        spawnThread(name: "idem-maintenance", priority: priority.resting) { [self] in loop() }
    }

    /// Sealed memtables pile up (and writers will soon wait for them, or
    /// already do): the thread must get its share of the CPU now.
    func flushesFallBehind() {
        priority.boost(.flushes)
    }

    /// Asks the background thread to look for work now.
    func wake() {
        signal.withLock { signal.broadcast() }
    }

    private func loop() {
        priority.attachCurrentThread()
        defer { priority.detachCurrentThread() }
        let interval = UInt64(max(1, options.maintenanceInterval)) * 1_000_000
        signal.lock()
        while !stopping {
            signal.unlock()
            _ = try? run()
            signal.lock()
            if stopping { break }
            signal.wait(nanoseconds: interval)
        }
        running = false
        signal.broadcast()
        signal.unlock()
    }

    func stop() {
        signal.lock()
        stopping = true
        signal.broadcast()
        while running { signal.wait() }
        signal.unlock()
        workLock.withLock { versions.close() }
        // The pipeline holds this object (weakly) and this object the
        // pipeline; let go so a closed engine is freed.
        pipeline.withLock { $0 = nil }
    }

    var totals: MaintenanceReport {
        published.withLock {
            var totals = $0.totals
            totals.add($0.current)
            return totals
        }
    }

    var lastError: EngineError? { published.withLock { $0.lastError } }
    /// Whether a merge is running now.
    var isCompacting: Bool { published.withLock { $0.compacting } }

    private func publishProgress(_ report: MaintenanceReport) {
        published.withLock { $0.current = report }
    }

    /// Runs `body` with background work held off, so the set of tables and
    /// the WAL segments they make obsolete stay as they are (backups).
    func withWorkPaused<R>(_ body: (VersionSet) throws(EngineError) -> R) throws(EngineError) -> R {
        workLock.lock()
        defer { workLock.unlock() }
        return try body(versions)
    }

    /// Does everything due now: flushes, drops, cold moves, compactions.
    @discardableResult
    func run() throws(EngineError) -> MaintenanceReport {
        workLock.lock()
        defer { workLock.unlock() }
        do {
            var report = MaintenanceReport()
            do throws(EngineError) {
                let now = options.clock.nowMilliseconds()
                if let pipeline = pipeline.withLock({ $0 }) {
                    pipeline.prepareLog()
                    // Only once memtables fill up: an engine that never
                    // seals one would hold a second index for nothing.
                    if !views.current.sealed.isEmpty { pipeline.prepareMemtable() }
                }
                try flushSealed(versions, now: now, into: &report)
                var started = monotonicNanoseconds()
                try dropEndedPartitions(versions, now: now, into: &report)
                report.dropSeconds += seconds(since: started)
                started = monotonicNanoseconds()
                // Flushes a merge lets in at its pauses time themselves.
                let flushSecondsBefore = report.flushSeconds
                try compact(versions, now: now, into: &report)
                report.compactionSeconds += seconds(since: started) - (report.flushSeconds - flushSecondsBefore)
            } catch {
                published.withLock {
                    $0.lastError = error
                    $0.totals.add(report)
                    $0.current = MaintenanceReport()
                }
                throw error
            }
            published.withLock {
                $0.lastError = nil
                $0.totals.add(report)
                $0.current = MaintenanceReport()
            }
            return report
        }
    }

    /// Hot tables restart every 4th entry: a point lookup then decodes
    /// ~2 entries past the restart it lands on instead of ~8 (random gets
    /// of 500k keys in tables: 1.06–1.33 µs against 1.27–1.48 µs with 16,
    /// `idem-workloads lookups`), for ~5 % more bytes on disk. Cold tables
    /// keep 16: they are read rarely and kept long.
    private var hotOptions: TableOptions {
        TableOptions(blockSize: options.hotBlockSize, compression: options.hotCompression, zstdLevel: 3,
                     bloomBitsPerKey: options.bloomBitsPerKey, restartInterval: 4, pointIndex: options.hotPointIndex)
    }

    private var coldOptions: TableOptions {
        TableOptions(blockSize: options.coldBlockSize, compression: options.coldCompression,
                     zstdLevel: options.coldZstdLevel, bloomBitsPerKey: options.bloomBitsPerKey)
    }

    /// Records `edit`; a failure here stops writes (see the type's comment).
    private func apply(_ versions: VersionSet, _ edit: VersionEdit, added: [LiveTable]) throws(EngineError) -> Version {
        do {
            return try versions.apply(edit, added: added)
        } catch {
            pipeline.withLock { $0 }?.enterReadOnly(reason: "manifest update failed: \(error)")
            throw error
        }
    }

    private func flushSealed(_ versions: VersionSet, now: Int64, into report: inout MaintenanceReport) throws(EngineError) {
        while let oldest = views.current.sealed.last {
            let started = monotonicNanoseconds()
            let outcome = try Flush(versions: versions, layout: layout, options: hotOptions, now: now).run(oldest)
            let version = try apply(versions, outcome.edit, added: outcome.added)
            views.install(version, flushed: oldest)
            report.flushes += 1
            report.flushedEntries += outcome.entriesWritten
            report.walSegmentsDeleted += deleteWALSegments(below: oldest.firstUncoveredSegment, versions: versions)
            report.flushSeconds += seconds(since: started)
            publishProgress(report)
            pipeline.withLock { $0 }?.wakeStalledWriters()
        }
        // Every sealed memtable is flushed: no writer waits on this thread.
        priority.rest(.flushes)
        if report.flushes > 0 { MemoryRelease.returnFreedMemory() }
    }

    /// Deletes the WAL segments a flush made obsolete (best effort: any
    /// left behind are deleted at the next open, below the manifest's log number).
    private func deleteWALSegments(below limit: UInt64, versions: VersionSet) -> Int {
        guard let names = try? versions.fileSystem.listDirectory(directory) else { return 0 }
        var deleted = 0
        for name in names {
            guard let number = LogFormat.segmentNumber(fromName: name), number < limit else { continue }
            if (try? versions.fileSystem.removeFile(directory.appendingPathComponent(name))) != nil { deleted += 1 }
        }
        if deleted > 0 { try? versions.fileSystem.syncDirectory(directory) }
        return deleted
    }

    /// Drops every partition whose end has passed: one manifest edit, then
    /// the files are unlinked. The cost does not depend on how many keys
    /// the partitions hold.
    private func dropEndedPartitions(_ versions: VersionSet, now: Int64, into report: inout MaintenanceReport) throws(EngineError) {
        let ended = versions.current.partitions.filter { $0.end != PartitionLayout.persistentEnd && $0.end <= now }
        guard !ended.isEmpty else { return }
        let doomed = ended.flatMap(\.tables)
        var edit = VersionEdit()
        edit.deletedFiles = doomed.map(\.number)
        let version = try apply(versions, edit, added: [])
        views.install(version)
        versions.deleteFiles(of: doomed)
        report.partitionsDropped += ended.count
        report.filesDropped += doomed.count
        report.bytesDropped += doomed.reduce(0) { $0 + $1.metadata.size }
        publishProgress(report)
        // These are usually the tables' last references: their files'
        // closes (which return the blocks) and the freeing of their filters
        // and indexes are the reclaimer's to do, not this thread's.
        BackgroundReclaimer.shared.release((ended, doomed))
    }

    /// Moves aged hot tables to the cold tier, and merges runs of a
    /// partition's tables of one tier as `CompactionPicker` chooses them.
    ///
    /// A merge stops to flush whenever memtables are waiting: a merge of a
    /// large partition takes seconds, and writers stall once
    /// `maxSealedMemtables` wait behind it. Flushing in the middle is safe:
    /// a flush only adds tables newer than every input, and the merge's
    /// edit removes exactly its inputs.
    private func compact(_ versions: VersionSet, now: Int64, into report: inout MaintenanceReport) throws(EngineError) {
        let picker = CompactionPicker(width: options.compactionTrigger, sizeRatio: options.compactionSizeRatio)
        for (end, tables) in versions.current.partitions {
            let hot = tables.filter { $0.metadata.tier == .hot }
            let aged = hot.filter { now - $0.metadata.createdAt >= options.coldAfter }
            var jobs: [(inputs: [LiveTable], tier: Tier)] = []
            if !aged.isEmpty {
                jobs.append((aged, .cold))
            }
            let young = hot.filter { now - $0.metadata.createdAt < options.coldAfter }
            if let run = picker.pick(young) { jobs.append((Array(run), .hot)) }
            if let run = picker.pick(tables.filter { $0.metadata.tier == .cold }) { jobs.append((Array(run), .cold)) }
            // Merges that let tables pile up to twice the trigger are behind
            // (an idle thread on a busy machine): catch up at nice 10.
            if tables.count >= 2 * options.compactionTrigger && !jobs.isEmpty { priority.boost(.merges) }
            defer { priority.rest(.merges) }
            for job in jobs {
                let compaction = Compaction(versions: versions, inputs: job.inputs, partitionEnd: end, outputTier: job.tier,
                                            options: job.tier == .hot ? hotOptions : coldOptions, now: now)
                published.withLock { $0.compacting = true }
                defer { published.withLock { $0.compacting = false } }
                let outcome = try compaction.run { () throws(EngineError) in
                    options.onCompactionPause?()
                    guard !views.current.sealed.isEmpty else { return }
                    try flushSealed(versions, now: options.clock.nowMilliseconds(), into: &report)
                }
                let version = try apply(versions, outcome.edit, added: outcome.added)
                views.install(version)
                versions.deleteFiles(of: outcome.removed)
                report.compactions += 1
                if job.tier == .cold && job.inputs.first?.metadata.tier == .hot { report.coldMigrations += 1 }
                report.compactionBytesRead += outcome.bytesRead
                report.compactionBytesWritten += outcome.bytesWritten
                publishProgress(report)
            }
        }
    }
}
