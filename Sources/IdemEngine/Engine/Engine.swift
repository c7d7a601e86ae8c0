/// A value as stored: its bytes, expiry and the sequence number of the
/// write that produced it.
///
/// A view of the engine's entry, not a copy of its bytes: most readers
/// look at a type byte or decode in place (`withValue`); `value` copies,
/// for those that keep the bytes.
public struct StoredValue: Sendable, Equatable {
    /// Safe to share across threads: an entry is immutable once made (see
    /// `VersionedEntry`), but as a `ManagedBuffer` it cannot say so itself.
    private nonisolated(unsafe) let entry: VersionedEntry

    init(_ entry: VersionedEntry) {
        self.entry = entry
    }

    /// The bytes, as an array of their own.
    public var value: [UInt8] { entry.value }
    /// Milliseconds since the Unix epoch; nil never expires.
    public var expiresAt: Int64? { entry.expiresAt == 0 ? nil : entry.expiresAt }
    public var sequence: UInt64 { entry.sequence }

    /// The bytes without a copy, valid only inside `body`.
    public func withValue<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result = entry.withValue { bytes in Result { () throws(E) -> R in try body(bytes) } }
        return try result.get()
    }

    /// The first byte (a type tag, for layers that keep one), nil when empty.
    public var firstByte: UInt8? { withValue { $0.first } }

    public static func == (lhs: StoredValue, rhs: StoredValue) -> Bool {
        lhs.sequence == rhs.sequence && lhs.expiresAt == rhs.expiresAt
            && lhs.withValue { left in rhs.withValue { right in left.elementsEqual(right) } }
    }
}

/// A read-modify-write that `Engine.apply` has applied: visible to
/// readers, durable already or once the log write it waits for is done.
public struct AppliedUpdate<R> {
    /// What the update's body returned.
    public let result: R
    @usableFromInline let waiter: CommitWaiter?

    @usableFromInline
    init(result: R, waiter: CommitWaiter?) {
        self.result = result
        self.waiter = waiter
    }

    /// True when nothing is left to wait for: `result` may be acted on now.
    public var isDurable: Bool { waiter == nil }

    /// The same update with its result transformed (a layer above the
    /// engine reporting its own outcome).
    @inlinable
    public func map<T>(_ transform: (R) throws -> T) rethrows -> AppliedUpdate<T> {
        AppliedUpdate<T>(result: try transform(result), waiter: waiter)
    }

    /// Calls `body` once the update is durable (or its log write failed):
    /// at once when it already is, otherwise on the thread that makes it
    /// durable (the commit thread, or with `deferLogWrites` the next
    /// `writeDeferredLog()`).
    public func whenDurable(_ body: @escaping @Sendable (Result<Void, EngineError>) -> Void) {
        guard let waiter else { return body(.success(())) }
        waiter.onComplete(body)
    }
}

extension AppliedUpdate: Sendable where R: Sendable {}

/// An embedded key-value store with a write-ahead log, for keys that
/// expire.
///
/// ```swift
/// let engine = try Engine.open(directory: "./data")
/// try await engine.put(Array("k".utf8), Array("v".utf8), expiresAt: now + 86_400_000)
/// let stored = try engine.get(Array("k".utf8))
/// try engine.close()
/// ```
///
/// Writes are `async`: they return once durable per `EngineOptions.durability`.
/// Reads are synchronous: memtables first, then tables through the block
/// cache (a cache miss reads the disk on the caller's thread). Expired
/// entries are invisible from their expiry instant (`expiresAt <= now`) on,
/// and their partition's files are deleted once the partition has ended.
/// Every method is safe to call from any thread.
public final class Engine: Sendable {
    public let directory: String
    public let options: EngineOptions
    /// What recovery found when this engine opened.
    public let recoveryReport: RecoveryReport

    private let views: ReadViews
    let pipeline: CommitPipeline
    let maintenance: Maintenance
    private let counters: EngineCounters
    private let cache: BlockCache
    private let directoryLock: any DirectoryLock

    private init(directory: String, options: EngineOptions, views: ReadViews, pipeline: CommitPipeline,
                 maintenance: Maintenance, counters: EngineCounters, cache: BlockCache,
                 directoryLock: any DirectoryLock, report: RecoveryReport) {
        self.directory = directory
        self.options = options
        self.views = views
        self.pipeline = pipeline
        self.maintenance = maintenance
        self.counters = counters
        self.cache = cache
        self.directoryLock = directoryLock
        self.recoveryReport = report
    }

    /// Opens (creating if needed) the engine in `directory`: recovers the
    /// manifest and its tables, replays the WAL. Throws `.corruption` naming
    /// the file and offset when stored data is damaged other than by an
    /// interrupted last write (unless `options.recovery` is `.salvage`,
    /// which salvages the WAL), and `.io` when the directory is in use by
    /// another process.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws(EngineError) -> Engine {
        let fileSystem = options.fileSystem
        let lock: any DirectoryLock
        do {
            try fileSystem.createDirectory(directory)
            lock = try fileSystem.lockFile(directory.appendingPathComponent("LOCK"))
        } catch {
            throw .io(error)
        }
        do throws(EngineError) {
            let cache = BlockCache(capacityBytes: options.blockCacheSize)
            let versions = try VersionSet.open(fileSystem: fileSystem, directory: directory,
                                               coldDirectory: options.coldDirectory ?? directory.appendingPathComponent("cold"),
                                               cache: cache, partitionWidth: options.partitionWidth)
            let memtable = Memtable(sizedFor: options.memtableSize)
            let outcome: LogRecovery.Outcome
            do {
                outcome = try LogRecovery(fileSystem: fileSystem, directory: directory, mode: options.recovery,
                                          memtable: memtable, segmentSizeLimit: options.walSegmentSize,
                                          mapsSegments: options.durability != .always,
                                          obsoleteBelow: versions.logNumber).run()
            } catch {
                versions.close()
                throw error
            }
            var report = outcome.report
            report.tablesOpened = versions.current.tables.count
            let views = ReadViews(ReadView(active: memtable, sealed: [], version: versions.current))
            let counters = EngineCounters()
            let maintenance = Maintenance(versions: versions, views: views, options: options, directory: directory)
            let pipeline = CommitPipeline(views: views, logWriter: outcome.logWriter,
                                          nextSequence: max(outcome.nextSequence, versions.lastSequence + 1),
                                          options: options, counters: counters,
                                          onSeal: { [weak maintenance] in maintenance?.wake() },
                                          onFlushBacklog: { [weak maintenance] in maintenance?.flushesFallBehind() })
            maintenance.start(pipeline: pipeline)
            return Engine(directory: directory, options: options, views: views, pipeline: pipeline,
                          maintenance: maintenance, counters: counters, cache: cache, directoryLock: lock, report: report)
        } catch {
            lock.release()
            throw error
        }
    }

    /// Finishes pending writes, syncs the log, stops background work and
    /// releases the directory. Later writes fail with `.closed`. Blocks.
    public func close() throws(EngineError) {
        defer { directoryLock.release() }
        defer { maintenance.stop() }
        try pipeline.close()
    }

    // MARK: - Reads

    /// The live value for `key`, or nil if absent, deleted or expired.
    /// Throws `.corruption` (naming the file) when a table block it needs
    /// fails validation; other keys stay readable.
    public func get(_ key: [UInt8]) throws(EngineError) -> StoredValue? {
        guard let entry = try views.lookup(key), let live = visible(entry) else { return nil }
        return Self.storedValue(live)
    }

    public func get(_ key: UnsafeRawBufferPointer) throws(EngineError) -> StoredValue? {
        guard let entry = try views.lookup(key), let live = visible(entry) else { return nil }
        return Self.storedValue(live)
    }

    /// What `get(ifCached:)` found.
    public enum CachedRead: Sendable, Equatable {
        /// The answer: the live value, or nil.
        case value(StoredValue?)
        /// Answering needs a table block that is not in the block cache.
        case needsDiskRead
    }

    /// `get` that never touches the disk: answers from the memtables, the
    /// bloom filters and the block cache, or says a disk read is needed —
    /// so an event loop can hand only those reads to a thread pool.
    public func get(ifCached key: [UInt8]) throws(EngineError) -> CachedRead {
        var result: Result<CachedRead, EngineError> = .success(.needsDiskRead)
        key.withUnsafeBytes { raw in
            result = Result { () throws(EngineError) -> CachedRead in try get(ifCached: raw) }
        }
        return try result.get()
    }

    public func get(ifCached key: UnsafeRawBufferPointer) throws(EngineError) -> CachedRead {
        guard let found = try views.current.lookupCached(key) else { return .needsDiskRead }
        guard let entry = found, let live = visible(entry) else { return .value(nil) }
        return .value(Self.storedValue(live))
    }

    /// A prefetcher for a batch of lookups about to be made (reads, or the
    /// reads of read-modify-writes): see `ReadPrefetcher`. Made per batch,
    /// it holds the current view until it is dropped.
    public func readPrefetcher() -> ReadPrefetcher {
        ReadPrefetcher(view: views.current)
    }

    /// Live keys starting with `prefix`, in key order, from `startKey`
    /// (inclusive) on, at most `limit`.
    public func scan(prefix: [UInt8] = [], from startKey: [UInt8]? = nil, limit: Int = .max) throws(EngineError) -> [(key: [UInt8], value: StoredValue)] {
        var result: [(key: [UInt8], value: StoredValue)] = []
        guard limit > 0 else { return result }
        try scan(prefix: prefix, from: startKey) { key, value in
            result.append((key, value))
            return result.count < limit
        }
        return result
    }

    /// Visits live keys starting with `prefix`, in key order, from
    /// `startKey` (inclusive) on, until `visit` returns false — without
    /// holding them all in memory. The view is the one current at the call:
    /// writes made meanwhile may or may not be seen.
    ///
    /// A scan uses the blocks the block cache holds but does not add the
    /// ones it reads: it passes over each block once, and a pass over every
    /// key (a key count, an export) would otherwise replace the blocks
    /// point lookups come back to with the whole key space's, block by block.
    public func scan(prefix: [UInt8] = [], from startKey: [UInt8]? = nil,
                     visit: (_ key: [UInt8], _ value: StoredValue) throws(EngineError) -> Bool) throws(EngineError) {
        var merged = try MergingScan(view: views.current, prefix: prefix, from: startKey)
        while let (key, entry) = try merged.next() {
            guard let live = visible(entry) else { continue }
            guard try visit(key, Self.storedValue(live)) else { return }
        }
    }

    // MARK: - Writes

    nonisolated(nonsending) public func put(_ key: [UInt8], _ value: [UInt8], expiresAt: Int64? = nil) async throws(EngineError) {
        try await write(WriteBatch(.init(kind: .value, key: key, value: value, expiresAt: expiresAt)))
    }

    nonisolated(nonsending) public func delete(_ key: [UInt8]) async throws(EngineError) {
        try await write(WriteBatch(.init(kind: .tombstone, key: key, value: [], expiresAt: nil)))
    }

    /// Applies every operation of `batch` atomically.
    nonisolated(nonsending) public func write(_ batch: WriteBatch) async throws(EngineError) {
        guard !batch.isEmpty else { return }
        let waiter: CommitWaiter?
        do {
            (_, waiter) = try pipeline.commit(reading: nil) { _ in (batch, ()) }
            pipeline.writeDeferred()
        } catch {
            // The decision closure above cannot throw: only engine errors reach here.
            throw error as! EngineError
        }
        try await waiter?.wait()
    }

    /// Like `write(_:)`, for callers that must not suspend (an event loop):
    /// `completion` runs once the batch is durable — at once when it
    /// already is, otherwise on the engine's commit thread (with
    /// `deferLogWrites`: in the next `writeDeferredLog()`).
    public func write(_ batch: WriteBatch, completion: @escaping @Sendable (Result<Void, EngineError>) -> Void) {
        do {
            let (_, waiter) = try pipeline.commit(reading: nil) { _ in (batch, ()) }
            if let waiter { waiter.onComplete(completion) } else { completion(.success(())) }
        } catch {
            completion(.failure(error as! EngineError))
        }
    }

    /// Atomic read-modify-write of one key, linearizable against every
    /// other write: `body` sees the key's current live value (nil when
    /// absent, deleted or expired), including writes not yet durable, and
    /// returns the change to make (nil for none) and a result. No other
    /// write is ordered between the read and the change.
    ///
    /// `body` runs while the engine's commit lock is held: keep it short,
    /// and do not call the engine from it. Returns once the change (or the
    /// state `body` saw) is durable.
    ///
    /// Inlinable, like the completion form: the generic shell is
    /// specialized in the caller's module, and the work is done by the
    /// non-generic `queueUpdate` — an unspecialized generic call looked
    /// up the metadata of its result types at run time on every update
    /// (4 % of a server's `SET NX`).
    @inlinable
    nonisolated(nonsending) public func update<R>(_ key: [UInt8], _ body: (StoredValue?) throws -> (Mutation?, R)) async throws -> R {
        let (result, waiter) = try prepareUpdate(key, body)
        writeDeferredLog()
        try await waiter?.wait()
        return result
    }

    /// With `EngineOptions.deferLogWrites`: appends every write waiting
    /// for its log write, applies them and runs their completions, on this
    /// thread. Cheap when nothing waits; a no-op without the option.
    public func writeDeferredLog() {
        pipeline.writeDeferred()
    }

    /// `update` for callers that must not suspend; see `write(_:completion:)`.
    /// `body` runs before this returns; `completion` receives its result.
    @inlinable
    public func update<R: Sendable>(_ key: [UInt8], _ body: (StoredValue?) throws -> (Mutation?, R),
                                    completion: @escaping @Sendable (Result<R, any Error>) -> Void) {
        do {
            let (result, waiter) = try prepareUpdate(key, body)
            guard let waiter else { return completion(.success(result)) }
            waiter.onComplete { outcome in completion(outcome.map { result }.mapError { $0 }) }
        } catch {
            completion(.failure(error))
        }
    }

    /// `update` in two steps, for callers that must not suspend and can
    /// act on the result before it is durable (an event loop formats its
    /// reply): `body` runs before this returns; the returned update says
    /// whether its change (or the state `body` saw) is durable yet, and
    /// reports when it becomes so. A server's `SET NX` on a key already
    /// durable, the common retry, then costs no callback at all.
    @inlinable
    public func apply<R>(_ key: [UInt8], _ body: (StoredValue?) throws -> (Mutation?, R)) throws -> AppliedUpdate<R> {
        let (result, waiter) = try prepareUpdate(key, body)
        return AppliedUpdate(result: result, waiter: waiter)
    }

    /// The generic part of both `update` forms, specialized with them in
    /// the caller's module: keeps `body`'s result aside and leaves the work
    /// to the non-generic `queueUpdate`.
    @inlinable
    func prepareUpdate<R>(_ key: [UInt8], _ body: (StoredValue?) throws -> (Mutation?, R)) throws -> (R, CommitWaiter?) {
        var produced: R?
        let waiter = try queueUpdate(key) { current in
            let (mutation, result) = try body(current)
            produced = result
            return mutation
        }
        // `queueUpdate` returns only after running `decide` once to completion.
        return (produced!, waiter)
    }

    /// The read-modify-write behind both `update` forms: runs `decide` on
    /// the live value under the commit lock and queues the change it
    /// chooses; the waiter (nil when nothing needs to become durable)
    /// reports when it is durable.
    @usableFromInline
    func queueUpdate(_ key: [UInt8], _ decide: (StoredValue?) throws -> Mutation?) throws -> CommitWaiter? {
        let (_, waiter) = try pipeline.commit(reading: key) { current in
            let live = current.flatMap(visible).map(Self.storedValue)
            var batch = WriteBatch()
            switch try decide(live) {
            case .put(let value, let expiresAt): batch.put(key, value, expiresAt: expiresAt)
            case .delete: if live != nil { batch.delete(key) }
            case nil: break
            }
            return (batch, ())
        }
        return waiter
    }

    // MARK: - Introspection

    public var statistics: EngineStatistics {
        let counts = counters.snapshot()
        let view = views.current
        return EngineStatistics(
            walAppends: counts.appends, walRecords: counts.records, walBytes: counts.bytes, walSyncs: counts.syncs,
            walSyncSeconds: Double(counts.syncNanoseconds) / 1e9, writesAcknowledged: counts.acknowledged,
            writeFailures: counts.failures, writeStalls: counts.stalls, lastSequence: pipeline.lastSequence,
            memtableEntries: view.active.count, memtableBytes: view.active.approximateBytes,
            sealedMemtables: view.sealed.count, currentWALSegment: pipeline.currentSegment,
            readOnlyReason: pipeline.readOnlyReason, tables: view.version.tables.count,
            partitions: view.version.partitions.count,
            tableBytes: view.version.tables.reduce(0) { $0 + Int($1.metadata.size) },
            blockCacheBytes: cache.usage, blockCacheHits: cache.hits,
            blockCacheMisses: cache.misses, maintenance: maintenance.totals,
            maintenanceError: maintenance.lastError.map { "\($0)" }, compacting: maintenance.isCompacting,
            maintenancePriority: maintenance.priority.effectivePreference, maintenanceBoosts: maintenance.priority.boosts)
    }

    /// Runs, on the caller's thread, the work the background thread does:
    /// flushes sealed memtables, drops ended partitions, compacts.
    @discardableResult
    public func runMaintenance() throws(EngineError) -> MaintenanceReport {
        try maintenance.run()
    }

    /// Blocks until the tables and WAL segments dropped so far have been
    /// closed and freed (their disk space returned); that work runs on a
    /// background thread — see `BackgroundReclaimer`. The thread serves
    /// every engine in the process, so this also waits for what other
    /// engines handed over.
    public func waitForReclaimedFiles() {
        BackgroundReclaimer.shared.waitUntilIdle()
    }

    /// Seals the active memtable now (even if small) and flushes it,
    /// so that everything written so far is in tables.
    public func flush() async throws(EngineError) {
        try pipeline.sealNow()
        try maintenance.run()
    }

    /// The live partitions and their tables.
    public var partitions: [PartitionInfo] {
        views.current.version.partitions.map { end, tables in
            PartitionInfo(end: end == PartitionLayout.persistentEnd ? nil : end, tables: tables.map { table in
                TableInfo(number: table.number, tier: table.metadata.tier, bytes: table.metadata.size,
                          entries: table.metadata.entries, tombstones: table.metadata.tombstones,
                          minExpiry: table.metadata.minExpiry == 0 ? nil : table.metadata.minExpiry,
                          maxExpiry: table.metadata.maxExpiry == 0 ? nil : table.metadata.maxExpiry,
                          createdAt: table.metadata.createdAt, path: table.reader.path)
            })
        }
    }

    // MARK: - Helpers

    private func visible(_ entry: VersionedEntry) -> VersionedEntry? {
        if entry.isTombstone || entry.isExpired(at: options.clock.nowMilliseconds()) { return nil }
        return entry
    }

    private static func storedValue(_ entry: VersionedEntry) -> StoredValue {
        StoredValue(entry)
    }
}

extension Engine {
    /// String conveniences (UTF-8 bytes).
    public func get(_ key: String) throws(EngineError) -> StoredValue? { try get(Array(key.utf8)) }

    nonisolated(nonsending) public func put(_ key: String, _ value: String, expiresAt: Int64? = nil) async throws(EngineError) {
        try await put(Array(key.utf8), Array(value.utf8), expiresAt: expiresAt)
    }

    nonisolated(nonsending) public func delete(_ key: String) async throws(EngineError) {
        try await delete(Array(key.utf8))
    }
}
