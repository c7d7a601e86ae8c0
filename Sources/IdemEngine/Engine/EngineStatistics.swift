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

    func snapshot() -> (appends: Int, records: Int, bytes: Int, syncs: Int, syncNanoseconds: Int, acknowledged: Int, failures: Int) {
        (walAppends.load(ordering: .relaxed), walRecords.load(ordering: .relaxed), walBytes.load(ordering: .relaxed),
         walSyncs.load(ordering: .relaxed), walSyncNanoseconds.load(ordering: .relaxed),
         commitsAcknowledged.load(ordering: .relaxed), writeFailures.load(ordering: .relaxed))
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
    public var lastSequence: UInt64
    public var memtableEntries: Int
    public var memtableBytes: Int
    public var currentWALSegment: UInt64
    /// Why writes are refused, if they are.
    public var readOnlyReason: String?
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
}
