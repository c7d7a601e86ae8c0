import Synchronization

/// Counters the engine keeps as it works; cheap to bump from any thread.
final class EngineCounters: Sendable {
    let walAppends = Atomic<Int>(0)
    let walRecords = Atomic<Int>(0)
    let walBytes = Atomic<Int>(0)
    let walSyncs = Atomic<Int>(0)
    let walSyncNanoseconds = Atomic<Int>(0)
    let commitsAcknowledged = Atomic<Int>(0)
    let writeFailures = Atomic<Int>(0)
    let writeStalls = Atomic<Int>(0)

    func snapshot() -> (appends: Int, records: Int, bytes: Int, syncs: Int, syncNanoseconds: Int, acknowledged: Int,
                        failures: Int, stalls: Int) {
        (walAppends.load(ordering: .relaxed), walRecords.load(ordering: .relaxed), walBytes.load(ordering: .relaxed),
         walSyncs.load(ordering: .relaxed), walSyncNanoseconds.load(ordering: .relaxed),
         commitsAcknowledged.load(ordering: .relaxed), writeFailures.load(ordering: .relaxed),
         writeStalls.load(ordering: .relaxed))
    }
}

/// A point-in-time view of the engine, for `idem` and (later) /metrics.
public struct EngineStatistics: Sendable {
    /// Calls that wrote to the WAL (one per group commit under `always`).
    public var walAppends: Int
    /// Records written (one per write batch).
    public var walRecords: Int
    public var walBytes: Int
    public var walSyncs: Int
    public var walSyncSeconds: Double
    /// Writes acknowledged to their callers.
    public var writesAcknowledged: Int
    public var writeFailures: Int
    /// Times a writer waited for flushes to catch up.
    public var writeStalls: Int
    public var lastSequence: UInt64
    public var memtableEntries: Int
    public var memtableBytes: Int
    public var sealedMemtables: Int
    public var currentWALSegment: UInt64
    /// Why writes are refused, if they are.
    public var readOnlyReason: String?
    public var tables: Int
    public var partitions: Int
    public var tableBytes: Int
    public var blockCacheBytes: Int
    public var blockCacheHits: Int
    public var blockCacheMisses: Int
    /// Flushes, drops and compactions since open.
    public var maintenance: MaintenanceReport
    /// The last background failure, if the last run failed.
    public var maintenanceError: String?
    /// Whether a merge of tables is running now.
    public var compacting: Bool
    /// What the maintenance thread runs at while its flushes keep up
    /// (`.low` where `.idle` was asked for but could not be undone).
    public var maintenancePriority: MaintenancePriority
    /// Times its work fell behind (two sealed memtables waiting, a writer
    /// stalled, or a partition at twice the merge trigger) and raised
    /// that thread.
    public var maintenanceBoosts: Int
}

/// What background maintenance did: one run's work, or the totals since open.
public struct MaintenanceReport: Sendable, Equatable {
    public var flushes = 0
    public var flushedEntries = 0
    public var partitionsDropped = 0
    public var filesDropped = 0
    public var bytesDropped: UInt64 = 0
    public var compactions = 0
    public var compactionBytesRead: UInt64 = 0
    public var compactionBytesWritten: UInt64 = 0
    public var coldMigrations = 0
    public var walSegmentsDeleted = 0
    /// Wall time spent in each activity.
    public var flushSeconds = 0.0
    public var dropSeconds = 0.0
    public var compactionSeconds = 0.0

    public init() {}

    mutating func add(_ other: MaintenanceReport) {
        flushes += other.flushes
        flushedEntries += other.flushedEntries
        partitionsDropped += other.partitionsDropped
        filesDropped += other.filesDropped
        bytesDropped += other.bytesDropped
        compactions += other.compactions
        compactionBytesRead += other.compactionBytesRead
        compactionBytesWritten += other.compactionBytesWritten
        coldMigrations += other.coldMigrations
        walSegmentsDeleted += other.walSegmentsDeleted
        flushSeconds += other.flushSeconds
        dropSeconds += other.dropSeconds
        compactionSeconds += other.compactionSeconds
    }
}

/// One live time partition: the instant it ends (nil for the partition of
/// keys that never expire) and its tables.
public struct PartitionInfo: Sendable {
    public var end: Int64?
    public var tables: [TableInfo]
}

public struct TableInfo: Sendable {
    public var number: UInt64
    public var tier: Tier
    public var bytes: UInt64
    public var entries: UInt64
    public var tombstones: UInt64
    public var minExpiry: Int64?
    public var maxExpiry: Int64?
    public var createdAt: Int64
    public var path: String
}

/// What recovery found and did when the engine opened.
public struct RecoveryReport: Sendable {
    public struct DroppedRange: Sendable, Equatable {
        public var file: String
        public var offset: Int
        public var length: Int
        public var reason: String
    }

    public var segmentsReplayed = 0
    public var recordsReplayed = 0
    public var entriesReplayed = 0
    public var lastSequence: UInt64 = 0
    /// Bytes cut from the end of the newest segment (an interrupted write).
    public var tornTailBytes = 0
    public var tornTailFile: String?
    /// Damaged ranges skipped in `.salvage` mode (always empty in `.strict`).
    public var droppedRanges: [DroppedRange] = []
    public var durationSeconds = 0.0
    /// Tables named by the manifest and opened.
    public var tablesOpened = 0
}
