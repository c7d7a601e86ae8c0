import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Orders, logs and applies every write. The heart of the write path.
///
/// Each commit runs, under `lock`: read the key's current entry (for a
/// read-modify-write), let the caller decide, assign sequence numbers,
/// encode the WAL record. What happens next depends on the durability:
///
/// - `.always` — group commit. The record joins `pending`; the commit thread
///   takes everything pending at once, writes it with one append, syncs once,
///   applies it to the memtable and completes every waiter in the group.
///   While a group syncs, the next one gathers. Writers never block a thread
///   (they hold a `CommitWaiter`), so an event loop can issue writes freely.
///   With `deferLogWrites`, an idle commit thread takes the group when
///   `writeDeferred()` releases it (an event loop, at the end of its
///   iteration), or `maxHoldNanoseconds` after it began: woken by the first
///   record, it would sync that one alone and leave the rest of the
///   iteration's records to the next sync.
/// - `.everysec` / `.never` — the caller appends its record to the log
///   itself (a write to the OS page cache, no sync) and applies it at once;
///   `.everysec` has a thread sync the log about once a second.
/// - `.everysec` / `.never` with `deferLogWrites` — records gather in
///   `pending` as under `.always`, and `writeDeferred()` (called by the
///   embedder, e.g. once per event-loop iteration) writes them all with one
///   append, applies them and completes their waiters; no sync.
///
/// Invariants:
/// - Sequence numbers are assigned, and records enter the log, in one order:
///   the order of commits under `lock`.
/// - Readers see only what is acknowledgeable: under `.always` an entry
///   reaches the memtable only after its group is synced. Until then it sits
///   in `overlay`, which read-modify-writes consult first, so two updates of
///   one key are linearizable even while the first awaits its sync.
/// - Every apply to the active memtable happens under `lock` (recovery's
///   replay runs before the pipeline exists). `currentEntry` relies on it
///   to trust a lookup made before the lock was taken.
/// - After a log failure, every later pending record fails too (it may have
///   read the failed one through `overlay`). A failed sync, or a log whose
///   on-disk state is uncertain, turns the pipeline read-only for good: an
///   fsync is never retried (after a failed fsync the kernel may have
///   dropped the dirty pages; a retry that "succeeds" proves nothing).
final class CommitPipeline: Sendable {
    struct PendingGroup {
        var log = LogBuffer()
        var entries: [(key: [UInt8], entry: VersionedEntry)] = []
        var waiters: [CommitWaiter] = []

        var isEmpty: Bool { waiters.isEmpty }

        mutating func removeAll() {
            log.removeAll()
            entries.removeAll(keepingCapacity: true)
            waiters.removeAll(keepingCapacity: true)
        }
    }

    struct State {
        /// The memtable taking writes; the same one `views` shows as active.
        var memtable: Memtable
        var nextSequence: UInt64
        var pending = PendingGroup()
        var spare = PendingGroup()
        /// For each key with a record committed but not yet applied (in
        /// `pending`, or in the group being written), its newest such
        /// entry; nothing else. So once nothing is pending but the group
        /// being finished, all of it is that group's.
        var overlay: [OverlayKey: VersionedEntry] = [:]
        var inlineBuffer = LogBuffer()
        var failure: EngineError?
        var closing = false
        var closed = false
        var backgroundThreads = 0
        /// Written to the OS since the last sync (`.everysec`).
        var unsynced = false
        /// `sealNow` asks the commit thread to seal (`.always`).
        var sealRequested = false
        /// `writeDeferred()` released `pending` to the commit thread
        /// (`.always` with `deferLogWrites`).
        var groupReleased = false
    }

    let views: ReadViews
    let options: EngineOptions
    let counters: EngineCounters
    private let lock = ConditionLock()
    /// Guarded by `lock`. The lock is what keeps accesses apart, so the
    /// runtime's exclusivity check (a thread-local lookup on every access
    /// of a class property, several per commit) is left out.
    @exclusivity(unchecked) nonisolated(unsafe) private var state: State
    /// Under `.always` used only by the commit thread; otherwise only with
    /// `lock` held (the periodic syncer takes `filesToSync` under it). The
    /// exception is its thread-safe part — the rolled-away segments and the
    /// segment prepared ahead — which `prepareLog` uses from the
    /// maintenance thread.
    nonisolated(unsafe) private let logWriter: LogWriter
    /// `prepareLog` runs under this; true once the log is closing. Taken
    /// before `lock`, never while holding it.
    private let logPreparation = Mutex(false)
    /// The memtable the next seal installs, made and prefaulted ahead by
    /// `prepareMemtable` (nil until then: the seal makes its own). Taken
    /// inside `lock` by a seal; never holds it.
    let preparedMemtable = Mutex<Memtable?>(nil)

    /// Called (with no lock held) after a memtable is sealed.
    private let onSeal: @Sendable () -> Void
    /// Called with `lock` held when flushes fall behind — a seal leaves
    /// `flushBacklogThreshold` memtables waiting, or a writer waits for
    /// them (then again every time it wakes to look): must be quick and
    /// must not take `lock`.
    private let onFlushBacklog: @Sendable () -> Void

    /// Sealed memtables waiting that count as flushes falling behind: one
    /// is the normal state while a flush runs; a second sealed before the
    /// first is flushed means the flusher is not keeping up with writes.
    static let flushBacklogThreshold = 2

    init(views: ReadViews, logWriter: LogWriter, nextSequence: UInt64, options: EngineOptions, counters: EngineCounters,
         onSeal: @escaping @Sendable () -> Void, onFlushBacklog: @escaping @Sendable () -> Void) {
        self.views = views
        self.logWriter = logWriter
        self.options = options
        self.counters = counters
        self.onSeal = onSeal
        self.onFlushBacklog = onFlushBacklog
        self.state = State(memtable: views.current.active, nextSequence: nextSequence)
        switch options.durability {
        case .always:
            state.backgroundThreads = 1
            spawnThread(name: "idem-commit") { [self] in commitLoop() }
        case .everysec:
            state.backgroundThreads = 1
            spawnThread(name: "idem-sync") { [self] in periodicSyncLoop() }
        case .never:
            break
        }
    }

    /// Whether commits wait in `pending` for a group write (the commit
    /// thread's, or `writeDeferred()`'s) rather than being logged inline.
    private var queuesCommits: Bool { options.durability == .always || options.defersLogWrites }

    /// Whether the commit thread waits for `writeDeferred()` to release a
    /// group (see the type's comment).
    private var holdsGroupsForRelease: Bool { options.durability == .always && options.deferLogWrites }

    /// How long a group waits for its release at most: a writer that never
    /// calls `writeDeferred()` is delayed, never stuck.
    static let maxHoldNanoseconds: UInt64 = 1_000_000

    var lastSequence: UInt64 { lock.withLock { state.nextSequence - 1 } }
    var readOnlyReason: String? {
        lock.withLock {
            if case .readOnly(let reason) = state.failure { return reason }
            return nil
        }
    }
    var currentSegment: UInt64 { lock.withLock { logWriter.segmentNumber } }

    /// Commits the batch `decide` returns, after showing it the current
    /// entry for `key` (pending writes included). `decide` runs with the
    /// commit lock held: it must be quick and must not call the engine.
    ///
    /// Returns `decide`'s result and, when the write is not yet durable, the
    /// waiter that completes when it is (with `deferLogWrites`: once
    /// `writeDeferred()` has written it).
    func commit<R>(reading key: [UInt8]?, _ decide: (VersionedEntry?) throws -> (WriteBatch, R)) throws -> (R, CommitWaiter?) {
        // Read before the lock is taken; `currentEntry` checks it still holds.
        let prefetched = try key.map { key throws(EngineError) in try prefetch(key) }

        lock.lock()
        var locked = true
        defer { if locked { lock.unlock() } }

        if let failure = state.failure { throw failure }
        if state.closing { throw EngineError.closed }

        var current: VersionedEntry?
        var readPending = false
        if let key {
            if !state.overlay.isEmpty, let pending = state.overlay[OverlayKey(key)] {
                current = pending
                readPending = true
            } else {
                current = try currentEntry(key, prefetched: prefetched)
            }
        }
        let (batch, result) = try decide(current)

        if batch.isEmpty {
            // A decision based on a write that is not yet durable must not
            // be reported before that write is: wait for the next group.
            guard readPending else { return (result, nil) }
            let waiter = CommitWaiter()
            state.pending.waiters.append(waiter)
            wakeCommitThread()
            return (result, waiter)
        }
        try batch.validate(options)

        let first = state.nextSequence
        if queuesCommits {
            try encode(batch, firstSequence: first, into: &state.pending.log)
            state.nextSequence += UInt64(batch.count)
            for (index, operation) in batch.operations.enumerated() {
                let entry = Self.entry(for: operation, sequence: first + UInt64(index))
                state.pending.entries.append((operation.key, entry))
                state.overlay[OverlayKey(operation.key)] = entry
            }
            let waiter = CommitWaiter()
            state.pending.waiters.append(waiter)
            wakeCommitThread()
            return (result, waiter)
        }

        state.inlineBuffer.removeAll()
        try encode(batch, firstSequence: first, into: &state.inlineBuffer)
        do throws(LogWriter.Failure) {
            try logWriter.append(&state.inlineBuffer)
        } catch {
            throw recordLogFailure(error)
        }
        countAppend(state.inlineBuffer)
        state.nextSequence += UInt64(batch.count)
        state.unsynced = true
        state.memtable.apply(batch.operations.indices.lazy.map { index in
            Self.entry(for: batch.operations[index], sequence: first + UInt64(index))
        })
        counters.commitsAcknowledged.add(1, ordering: .relaxed)
        let sealed = sealIfFull()
        lock.unlock()
        locked = false
        if sealed { onSeal() }
        return (result, nil)
    }

    /// What a commit read before taking `lock`: the key's newest entry in
    /// `view`'s memtables, and (when they hold none) in its tables.
    private struct Prefetch {
        let view: ReadView
        /// `views.swapCount` read before `view` was.
        let swaps: UInt64
        /// `view.active.applyCount` read before the lookup.
        let applies: UInt64
        let memtableEntry: VersionedEntry?
        /// Read only when no memtable held the key.
        let tableEntry: VersionedEntry??
    }

    /// Reads `key` without `lock`: the bloom probes and block reads of the
    /// tables are the slow part of a lookup, and under the lock they would
    /// serialize every writer behind one reader.
    private func prefetch(_ key: [UInt8]) throws(EngineError) -> Prefetch {
        let swaps = views.swapCount
        let view = views.current
        let applies = view.active.applyCount
        return try key.withUnsafeBytes { raw in
            Result { () throws(EngineError) -> Prefetch in
                if let entry = view.memtableEntry(raw) {
                    return Prefetch(view: view, swaps: swaps, applies: applies, memtableEntry: entry, tableEntry: nil)
                }
                return Prefetch(view: view, swaps: swaps, applies: applies, memtableEntry: nil, tableEntry: .some(try view.version.get(raw)))
            }
        }.get()
    }

    /// The newest committed entry for `key` (call with `lock` held, after
    /// the overlay). The prefetch stands whole when nothing changed since:
    /// the same view (no seal, flush or compaction) and no apply to its
    /// active memtable (applies run under `lock`, so none is running now)
    /// — the common case, which saves a second probe of every memtable.
    /// Otherwise the memtables are read again, and the prefetched table
    /// entry is used if its version is still current (tables are
    /// immutable).
    private func currentEntry(_ key: [UInt8], prefetched: Prefetch?) throws(EngineError) -> VersionedEntry? {
        // An unchanged swap count says the prefetch's view is still the
        // current one, without taking the views' mutex and a reference to
        // the view (lines both event loops write, on every commit).
        if let prefetched, views.swapCount == prefetched.swaps, prefetched.view.active.applyCount == prefetched.applies {
            return prefetched.memtableEntry ?? prefetched.tableEntry ?? nil
        }
        let view = views.current
        return try key.withUnsafeBytes { raw in
            Result { () throws(EngineError) -> VersionedEntry? in
                if let entry = view.memtableEntry(raw) { return entry }
                if let prefetched, prefetched.view.version === view.version, let tableEntry = prefetched.tableEntry {
                    return tableEntry
                }
                return try view.version.get(raw)
            }
        }.get()
    }

    /// Tells the commit thread a group is pending. Only `.always` has one:
    /// with deferred log writes a broadcast would only wake the periodic
    /// syncer (it waits on the same condition) once per write, for nothing.
    /// A group held for release wakes it once, to start the hold's clock.
    private func wakeCommitThread() {
        guard options.durability == .always else { return }
        if !holdsGroupsForRelease || state.pending.waiters.count == 1 { lock.broadcast() }
    }

    private func encode(_ batch: WriteBatch, firstSequence: UInt64, into buffer: inout LogBuffer) throws(EngineError) {
        let length = buffer.appendRecord(type: .writeBatch) { bytes in
            BatchCodec.encode(batch, firstSequence: firstSequence, into: &bytes)
        }
        if length > options.maxBatchBytes {
            buffer.removeLastRecord()
            throw .batchTooLarge(size: length, limit: options.maxBatchBytes)
        }
    }

    private static func entry(for operation: WriteBatch.Operation, sequence: UInt64) -> VersionedEntry {
        VersionedEntry.make(kind: operation.kind, key: operation.key, value: operation.value,
                           expiresAt: operation.expiresAt ?? 0, sequence: sequence)
    }

    /// Turns a log failure into the error callers see; an unrecoverable one
    /// also makes the pipeline read-only. Call with `lock` held.
    private func recordLogFailure(_ failure: LogWriter.Failure) -> EngineError {
        counters.writeFailures.add(1, ordering: .relaxed)
        switch failure {
        case .writeFailed(let io):
            return .io(io)
        case .unrecoverable(let io):
            let error = EngineError.readOnly(reason: "\(io)")
            state.failure = error
            return error
        }
    }

    private func countAppend(_ buffer: LogBuffer) {
        counters.walAppends.add(1, ordering: .relaxed)
        counters.walRecords.add(buffer.records.count, ordering: .relaxed)
        counters.walBytes.add(buffer.bytes.count, ordering: .relaxed)
    }

    /// Syncs `files` in order (`LogWriter.filesToSync`: rolled-away
    /// segments first, then the current one), counted as one log sync.
    private func timedSync(_ files: [any WritableFile]) throws(IOFailure) {
        let start = monotonicNanoseconds()
        for file in files { try file.sync() }
        counters.walSyncs.add(1, ordering: .relaxed)
        counters.walSyncNanoseconds.add(Int(monotonicNanoseconds() - start), ordering: .relaxed)
    }

    /// Off the commit path (the maintenance thread, woken by a seal):
    /// syncs the segments a roll left without syncing, and creates the
    /// next segment ahead of need, so a roll does no I/O under `lock`.
    func prepareLog() {
        logPreparation.withLock { closed in
            guard !closed else { return }
            let rolledAway = logWriter.rolledAwayUnsynced
            if !rolledAway.isEmpty {
                do throws(IOFailure) {
                    try timedSync(rolledAway)
                    logWriter.markSynced(rolledAway)
                } catch {
                    lock.withLock { _ = recordLogFailure(.unrecoverable(error)) }
                    return
                }
            }
            logWriter.prepareNextSegment()
        }
    }

    /// Off the commit path (the maintenance thread, after a seal): makes
    /// the memtable the next seal installs, its index sized and backed by
    /// pages now.
    /// Why: a fresh index's pages fault in as the memtable fills, two
    /// faults a page and a TLB flush on every core — 1–2 % of a pipelined
    /// `SET`'s CPU, all of it on the event loops and half under `lock`.
    func prepareMemtable() {
        guard preparedMemtable.withLock({ $0 == nil }) else { return }
        let memtable = Memtable(sizedFor: options.memtableSize)
        memtable.prefault()
        preparedMemtable.withLock { prepared in
            if prepared == nil { prepared = memtable }
        }
    }

    // MARK: - Group commit (`.always`)

    private func commitLoop() {
        lock.lock()
        var heldSince: UInt64?
        while true {
            while state.pending.isEmpty && !state.closing && !state.sealRequested { lock.wait() }
            if holdsGroupsForRelease && !state.groupReleased && !state.closing && !state.sealRequested
                && !state.pending.isEmpty {
                let now = monotonicNanoseconds()
                let since = heldSince ?? now
                heldSince = since
                if now - since < Self.maxHoldNanoseconds {
                    lock.wait(nanoseconds: Self.maxHoldNanoseconds - (now - since))
                    continue
                }
            }
            heldSince = nil
            if state.sealRequested {
                let sealed = sealIfFull(force: true)
                state.sealRequested = false
                lock.broadcast()
                if sealed {
                    lock.unlock()
                    onSeal()
                    lock.lock()
                }
                continue
            }
            if state.pending.isEmpty { break }
            state.groupReleased = false
            var group = state.pending
            state.pending = state.spare
            state.spare = PendingGroup()
            lock.unlock()

            // This thread is the log's only writer under `.always`.
            var failure: LogWriter.Failure?
            var synced: [any WritableFile] = []
            if !group.log.isEmpty {
                do throws(LogWriter.Failure) {
                    try logWriter.append(&group.log)
                    countAppend(group.log)
                    synced = logWriter.filesToSync
                    do { try timedSync(synced) } catch { throw .unrecoverable(error) }
                } catch {
                    failure = error
                }
            }

            logWriter.markSynced(synced)
            lock.lock()
            finish(&group, failure: failure)
        }
        state.backgroundThreads -= 1
        lock.broadcast()
        lock.unlock()
    }

    /// Ends a group whose log append is done (or failed): applies it and
    /// completes its waiters, or fails them and every later pending one
    /// (which may have read the failed records through `overlay`). Call
    /// with `lock` held; returns with it held, having released it while
    /// completing waiters.
    private func finish(_ group: inout PendingGroup, failure: LogWriter.Failure?) {
        if let failure {
            let error = recordLogFailure(failure)
            var later = state.pending
            state.pending = PendingGroup()
            state.overlay.removeAll()
            lock.unlock()
            for waiter in group.waiters + later.waiters { waiter.complete(.failure(error)) }
            later.removeAll()
        } else {
            state.memtable.apply(group.entries.lazy.map(\.entry))
            if state.pending.entries.isEmpty {
                // Every overlay entry is this group's (the overlay holds
                // only records not yet applied): dropping them all skips
                // two hashes of every key, as with `deferLogWrites`, where
                // the group is always everything pending.
                state.overlay.removeAll(keepingCapacity: true)
            } else {
                for (key, entry) in group.entries where state.overlay[OverlayKey(key)] === entry {
                    state.overlay[OverlayKey(key)] = nil
                }
            }
            counters.commitsAcknowledged.add(group.waiters.count, ordering: .relaxed)
            let sealed = sealIfFull()
            lock.unlock()
            for waiter in group.waiters { waiter.complete(.success(())) }
            if sealed { onSeal() }
        }
        group.removeAll()
        lock.lock()
        if state.spare.log.bytes.capacity < group.log.bytes.capacity { state.spare = group }
    }

    // MARK: - Deferred log writes (`deferLogWrites`)

    /// Writes every pending commit with one append (no sync), applies them
    /// and completes their waiters, on the caller's thread. The append runs
    /// under `lock`: it is a copy into the OS page cache, and holding the
    /// lock keeps the log in sequence order with a single writer.
    func writeDeferred() {
        if holdsGroupsForRelease { return releaseGroup() }
        guard options.defersLogWrites else { return }
        lock.lock()
        defer { lock.unlock() }
        guard !state.pending.isEmpty, !state.closed else { return }
        var group = state.pending
        state.pending = state.spare
        state.spare = PendingGroup()
        var failure: LogWriter.Failure?
        if !group.log.isEmpty {
            do throws(LogWriter.Failure) {
                try logWriter.append(&group.log)
                countAppend(group.log)
                state.unsynced = true
            } catch {
                failure = error
            }
        }
        finish(&group, failure: failure)
    }

    /// Hands what is pending to the commit thread (`.always` with
    /// `deferLogWrites`).
    private func releaseGroup() {
        lock.withLock { releasePending() }
    }

    /// `releaseGroup` with `lock` held.
    private func releasePending() {
        guard !state.pending.isEmpty, !state.groupReleased else { return }
        state.groupReleased = true
        lock.broadcast()
    }

    // MARK: - Sealing memtables

    /// Once the active memtable is full: starts a new WAL segment, seals the
    /// memtable (it then covers exactly the segments before the new one) and
    /// makes a new one active. Call with `lock` held, between commits, by
    /// the log's owner. Returns whether it sealed.
    ///
    /// Back-pressure: while `maxSealedMemtables` wait to be flushed, the
    /// writer waits here (counted in `writeStalls`) — memory stays bounded
    /// and the flusher catches up.
    private func sealIfFull(force: Bool = false) -> Bool {
        guard force || state.memtable.approximateBytes >= options.memtableSize else { return false }
        var stalled = false
        // Without the background thread nothing would ever flush: the
        // caller runs maintenance itself, and no stall is imposed.
        while options.backgroundMaintenance && views.current.sealed.count >= options.maxSealedMemtables
                && !state.closing && state.failure == nil {
            if !stalled { counters.writeStalls.add(1, ordering: .relaxed) }
            stalled = true
            onFlushBacklog()
            lock.wait(nanoseconds: 100_000_000)
        }
        guard state.failure == nil, !state.closing else { return false }
        do throws(LogWriter.Failure) {
            // Syncs the old segment: every segment but the newest is whole.
            try logWriter.roll()
        } catch {
            _ = recordLogFailure(error)
            return false
        }
        let sealed = SealedMemtable(memtable: state.memtable, firstUncoveredSegment: logWriter.segmentNumber)
        state.memtable = preparedMemtable.withLock { $0.take() } ?? Memtable(sizedFor: options.memtableSize)
        views.seal(sealed, replacement: state.memtable)
        if views.current.sealed.count >= Self.flushBacklogThreshold { onFlushBacklog() }
        return true
    }

    /// Seals the active memtable whatever its size (for `Engine.flush`).
    /// Waits for pending group commits first, so that everything committed
    /// before the call is in the sealed memtable.
    func sealNow() throws(EngineError) {
        lock.lock()
        defer { lock.unlock() }
        while !state.pending.isEmpty && state.failure == nil {
            if options.defersLogWrites {
                // Nobody else may be about to write them: do it here.
                lock.unlock()
                writeDeferred()
                lock.lock()
            } else {
                if holdsGroupsForRelease { releasePending() }
                lock.wait(nanoseconds: 1_000_000)
            }
        }
        if let failure = state.failure { throw failure }
        if state.closing { throw .closed }
        guard state.memtable.count > 0 else { return }
        if options.durability == .always {
            // The commit thread owns the log; ask it to seal between groups.
            state.sealRequested = true
            lock.broadcast()
            while state.sealRequested && state.failure == nil { lock.wait(nanoseconds: 1_000_000) }
        } else {
            _ = sealIfFull(force: true)
        }
        if let failure = state.failure { throw failure }
    }

    /// Wakes writers stalled on the sealed-memtable backlog (after a flush).
    func wakeStalledWriters() {
        lock.withLock { lock.broadcast() }
    }

    /// Stops writes for good (a failure whose effect on disk is unknown).
    func enterReadOnly(reason: String) {
        lock.withLock {
            if state.failure == nil { state.failure = .readOnly(reason: reason) }
            lock.broadcast()
        }
    }

    // MARK: - Periodic sync (`.everysec`)

    private func periodicSyncLoop() {
        let interval: UInt64 = 1_000_000_000
        var lastSync = monotonicNanoseconds()
        lock.lock()
        while !state.closing {
            let elapsed = monotonicNanoseconds() - lastSync
            if elapsed < interval {
                lock.wait(nanoseconds: interval - elapsed)
                continue
            }
            lastSync = monotonicNanoseconds()
            guard state.unsynced, state.failure == nil else { continue }
            state.unsynced = false
            let files = logWriter.filesToSync
            lock.unlock()
            do {
                try timedSync(files)
                logWriter.markSynced(files)
                lock.lock()
            } catch {
                lock.lock()
                _ = recordLogFailure(.unrecoverable(error))
            }
        }
        state.backgroundThreads -= 1
        lock.broadcast()
        lock.unlock()
    }

    // MARK: - Shutdown

    /// Refuses new writes, lets pending ones finish, syncs the log and
    /// closes it. Blocks until done; safe to call more than once.
    func close() throws(EngineError) {
        // Waits out a preparation in flight; none starts after this.
        logPreparation.withLock { $0 = true }
        lock.lock()
        defer { lock.unlock() }
        guard !state.closed else { return }
        state.closing = true
        lock.broadcast()
        if options.defersLogWrites && !state.pending.isEmpty {
            // Commits already accepted get their write; new ones are refused.
            lock.unlock()
            writeDeferred()
            lock.lock()
        }
        while state.backgroundThreads > 0 { lock.wait() }
        state.closed = true
        defer { logWriter.close() }
        if state.failure == nil {
            do { try timedSync(logWriter.filesToSync) } catch { throw .io(error) }
        }
    }
}

/// A key in `CommitPipeline.State.overlay`, hashed as one run of bytes
/// (an `[UInt8]` key hashes byte by byte: several times slower).
struct OverlayKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Seconds since `started`, a `monotonicNanoseconds()` reading.
func seconds(since started: UInt64) -> Double {
    Double(monotonicNanoseconds() - started) / 1e9
}
