/// A value as stored: its bytes, expiry and the sequence number of the
/// write that produced it.
public struct StoredValue: Sendable, Equatable {
    public var value: [UInt8]
    /// Milliseconds since the Unix epoch; nil never expires.
    public var expiresAt: Int64?
    public var sequence: UInt64
}

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
/// Reads are synchronous and never wait for I/O in this version (all data
/// is in memory). Expired entries are invisible from their expiry instant
/// (`expiresAt <= now`) on. Every method is safe to call from any thread.
public final class Engine: Sendable {
    public let directory: String
    public let options: EngineOptions
    /// What recovery found when this engine opened.
    public let recoveryReport: RecoveryReport

    private let memtable: Memtable
    private let pipeline: CommitPipeline
    private let counters: EngineCounters
    private let directoryLock: any DirectoryLock

    private init(directory: String, options: EngineOptions, memtable: Memtable, pipeline: CommitPipeline,
                 counters: EngineCounters, directoryLock: any DirectoryLock, report: RecoveryReport) {
        self.directory = directory
        self.options = options
        self.memtable = memtable
        self.pipeline = pipeline
        self.counters = counters
        self.directoryLock = directoryLock
        self.recoveryReport = report
    }

    /// Opens (creating if needed) the engine in `directory`, replaying its
    /// log. Throws `.corruption` naming the file and offset when the log is
    /// damaged other than by an interrupted last write (unless
    /// `options.recovery` is `.salvage`), and `.io` when the directory is
    /// in use by another process.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws(EngineError) -> Engine {
        let fileSystem = options.fileSystem
        let lock: any DirectoryLock
        do {
            try fileSystem.createDirectory(directory)
            lock = try fileSystem.lockFile(directory.appendingPathComponent("LOCK"))
        } catch {
            throw .io(error)
        }
        let memtable = Memtable()
        let outcome: LogRecovery.Outcome
        do {
            outcome = try LogRecovery(fileSystem: fileSystem, directory: directory, mode: options.recovery,
                                      memtable: memtable, segmentSizeLimit: options.walSegmentSize).run()
        } catch {
            lock.release()
            throw error
        }
        let counters = EngineCounters()
        let pipeline = CommitPipeline(memtable: memtable, logWriter: outcome.logWriter, nextSequence: outcome.nextSequence,
                                      options: options, counters: counters)
        return Engine(directory: directory, options: options, memtable: memtable, pipeline: pipeline,
                      counters: counters, directoryLock: lock, report: outcome.report)
    }

    /// Finishes pending writes, syncs the log and releases the directory.
    /// Later calls fail with `.closed`. Blocks for the final sync.
    public func close() throws(EngineError) {
        defer { directoryLock.release() }
        try pipeline.close()
    }

    // MARK: - Reads

    /// The live value for `key`, or nil if absent, deleted or expired.
    public func get(_ key: [UInt8]) -> StoredValue? {
        key.withUnsafeBytes { get($0) }
    }

    public func get(_ key: UnsafeRawBufferPointer) -> StoredValue? {
        guard let entry = memtable.get(key), let live = visible(entry) else { return nil }
        return Self.storedValue(live)
    }

    /// Runs `body` on the live value's bytes without copying them; nil when
    /// there is no live value.
    public func withValue<R>(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, _ expiresAt: Int64?) throws -> R) rethrows -> R? {
        guard let entry = memtable.get(key), let live = visible(entry) else { return nil }
        return try live.withValue { try body($0, live.expiresAt == 0 ? nil : live.expiresAt) }
    }

    /// Live keys starting with `prefix`, in key order, from `startKey` (inclusive) on, at most `limit`.
    public func scan(prefix: [UInt8] = [], from startKey: [UInt8]? = nil, limit: Int = .max) -> [(key: [UInt8], value: StoredValue)] {
        var result: [(key: [UInt8], value: StoredValue)] = []
        var lowerBound = startKey
        let now = options.clock.nowMilliseconds()
        // Dead entries (tombstones, expired) are skipped, so fetch in pages
        // until `limit` live ones are found or the range ends.
        let pageSize = 1024
        while result.count < limit {
            let page = memtable.entries(prefix: prefix, from: lowerBound, limit: pageSize)
            for entry in page where !entry.isTombstone && !entry.isExpired(at: now) {
                result.append((entry.key, Self.storedValue(entry)))
                if result.count == limit { break }
            }
            guard page.count == pageSize, let last = page.last else { break }
            // The smallest key after `last`.
            lowerBound = last.key + [0]
        }
        return result
    }

    // MARK: - Writes

    public func put(_ key: [UInt8], _ value: [UInt8], expiresAt: Int64? = nil) async throws(EngineError) {
        try await write(WriteBatch(.init(kind: .value, key: key, value: value, expiresAt: expiresAt)))
    }

    public func delete(_ key: [UInt8]) async throws(EngineError) {
        try await write(WriteBatch(.init(kind: .tombstone, key: key, value: [], expiresAt: nil)))
    }

    /// Applies every operation of `batch` atomically.
    public func write(_ batch: WriteBatch) async throws(EngineError) {
        guard !batch.isEmpty else { return }
        let waiter: CommitWaiter?
        do {
            (_, waiter) = try pipeline.commit(reading: nil) { _ in (batch, ()) }
        } catch {
            // The decision closure above cannot throw: only engine errors reach here.
            throw error as! EngineError
        }
        try await waiter?.wait()
    }

    /// Like `write(_:)`, for callers that must not suspend (an event loop):
    /// `completion` runs once the batch is durable — at once when it
    /// already is, otherwise on the engine's commit thread.
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
    public func update<R>(_ key: [UInt8], _ body: (StoredValue?) throws -> (Mutation?, R)) async throws -> R {
        let (result, waiter) = try prepareUpdate(key, body)
        try await waiter?.wait()
        return result
    }

    /// `update` for callers that must not suspend; see `write(_:completion:)`.
    /// `body` runs before this returns; `completion` receives its result.
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

    private func prepareUpdate<R>(_ key: [UInt8], _ body: (StoredValue?) throws -> (Mutation?, R)) throws -> (R, CommitWaiter?) {
        try pipeline.commit(reading: key) { current in
            let live = current.flatMap(visible).map(Self.storedValue)
            let (mutation, result) = try body(live)
            var batch = WriteBatch()
            switch mutation {
            case .put(let value, let expiresAt): batch.put(key, value, expiresAt: expiresAt)
            case .delete: if live != nil { batch.delete(key) }
            case nil: break
            }
            return (batch, result)
        }
    }

    // MARK: - Introspection

    public var statistics: EngineStatistics {
        let counts = counters.snapshot()
        return EngineStatistics(
            walAppends: counts.appends, walRecords: counts.records, walBytes: counts.bytes, walSyncs: counts.syncs,
            walSyncSeconds: Double(counts.syncNanoseconds) / 1e9, writesAcknowledged: counts.acknowledged,
            writeFailures: counts.failures, lastSequence: pipeline.lastSequence, memtableEntries: memtable.count,
            memtableBytes: memtable.approximateBytes, currentWALSegment: pipeline.currentSegment,
            readOnlyReason: pipeline.readOnlyReason)
    }

    // MARK: - Helpers

    private func visible(_ entry: VersionedEntry) -> VersionedEntry? {
        if entry.isTombstone || entry.isExpired(at: options.clock.nowMilliseconds()) { return nil }
        return entry
    }

    private static func storedValue(_ entry: VersionedEntry) -> StoredValue {
        StoredValue(value: entry.value, expiresAt: entry.expiresAt == 0 ? nil : entry.expiresAt, sequence: entry.sequence)
    }
}

extension Engine {
    /// String conveniences (UTF-8 bytes).
    public func get(_ key: String) -> StoredValue? { get(Array(key.utf8)) }

    public func put(_ key: String, _ value: String, expiresAt: Int64? = nil) async throws(EngineError) {
        try await put(Array(key.utf8), Array(value.utf8), expiresAt: expiresAt)
    }

    public func delete(_ key: String) async throws(EngineError) {
        try await delete(Array(key.utf8))
    }
}
