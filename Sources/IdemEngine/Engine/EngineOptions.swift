/// When an acknowledged write is on stable storage.
public enum Durability: String, Sendable, CaseIterable {
    /// A write is acknowledged after the log is synced (fdatasync).
    /// Concurrent writers share one sync (group commit). The default.
    case always
    /// A write is acknowledged once handed to the operating system; the log
    /// is synced about once a second. Survives a process crash; a power
    /// loss may lose the last second.
    case everysec
    /// Like `everysec` without the periodic sync: the OS decides.
    case never
}

/// What to do when recovery finds corruption (not a torn tail).
public enum RecoveryMode: Sendable, Equatable {
    /// Refuse to open, naming the file and offset.
    case strict
    /// Keep every valid record, drop what is damaged, report it in
    /// `RecoveryReport.droppedRanges`, and rewrite the log so the next open
    /// is clean.
    case salvage
}

public struct EngineOptions: Sendable {
    public var durability: Durability = .always
    /// Under `.everysec` and `.never`: instead of one log append per
    /// write, writes wait (unapplied, like a group commit) until the
    /// embedder calls `Engine.writeDeferredLog()`, which appends them all at
    /// once and completes them — for a server that calls it once per
    /// event-loop iteration. The `async` write methods call it themselves;
    /// callers of the completion-handler methods must. Under `.always`,
    /// `writeDeferredLog()` releases the writes waiting to the commit
    /// thread, which syncs them as one group (or, if no release comes, 1 ms
    /// after the first): a group then holds everything an event-loop
    /// iteration wrote.
    public var deferLogWrites = false

    /// Whether writes wait for `writeDeferredLog()` to append them (not
    /// under `.always`, where the commit thread appends).
    public var defersLogWrites: Bool { deferLogWrites && durability != .always }
    public var recovery: RecoveryMode = .strict
    public var maxKeySize = 1024
    public var maxValueSize = 8 << 20
    /// The largest encoded write batch (one WAL record).
    public var maxBatchBytes = 64 << 20
    /// A WAL segment rolls once it would grow past this.
    public var walSegmentSize: Int64 = 64 << 20

    // MARK: Memtables and tables

    /// A memtable is sealed and flushed once it holds about this many bytes.
    public var memtableSize = 64 << 20
    /// Writers stall while this many sealed memtables await their flush.
    public var maxSealedMemtables = 4
    /// The width of a time partition, in milliseconds (default one hour).
    /// Entries are grouped into partitions by expiry time; a partition is
    /// deleted whole once its end has passed.
    public var partitionWidth: Int64 = 3_600_000
    /// Bytes of decompressed blocks kept in memory.
    public var blockCacheSize = 64 << 20
    /// Bloom filter bits per key (see `BloomFilter` for why 20).
    public var bloomBitsPerKey = 20
    /// Hot tables carry a point index (a hash of every key to its block and
    /// restart interval) behind their bloom filter: a lookup the filter
    /// passes is one probe and one block instead of an index-block search
    /// and a block search — for ~11 bytes of memory per key on top of the
    /// filter's 2.5. Cold tables have the filter alone.
    public var hotPointIndex = true
    /// Data block size and compression of freshly written (hot) tables.
    /// 4 KiB, as LevelDB: a point read that misses the block cache reads,
    /// verifies and decompresses the whole block (3M keys in tables, random
    /// gets: 8 KiB → 4 KiB took 9 % off the time).
    public var hotBlockSize = 4 << 10
    public var hotCompression: CompressionKind = .lz4
    /// Tables older than this (milliseconds) are rewritten into the cold
    /// tier, with `coldCompression` and larger blocks.
    public var coldAfter: Int64 = 6 * 3_600_000
    public var coldBlockSize = 32 << 10
    public var coldCompression: CompressionKind = .zstd
    public var coldZstdLevel: Int32 = 6
    /// Where cold tables live (a cheaper disk, say); `<directory>/cold` when nil.
    public var coldDirectory: String?
    /// The fewest tables of a partition (and tier) merged at once.
    public var compactionTrigger = 4
    /// Tables of a partition are merged in runs of similar size: an older
    /// table joins a run while it is at most `1 + compactionSizeRatio`
    /// times the run's bytes so far (`CompactionPicker`). Larger values
    /// merge more eagerly (fewer tables, more rewriting).
    public var compactionSizeRatio = 1.0
    /// Run flushes, partition drops and compactions on a background thread,
    /// checking at least this often (milliseconds). With `false`, nothing
    /// happens until `Engine.runMaintenance()` is called (tests).
    public var backgroundMaintenance = true
    public var maintenanceInterval: Int64 = 1000
    /// How the maintenance thread competes for the CPU (Linux): `.idle`
    /// lets it run only on CPU time the embedder's threads leave, raised
    /// while its flushes or merges fall behind (`BoostablePriority`);
    /// `.low` is nice 10.
    public var maintenancePriority = MaintenancePriority.idle

    /// Tests: called on the maintenance thread each time a merge pauses
    /// to let flushes in, before it looks for sealed memtables.
    var onCompactionPause: (@Sendable () -> Void)?

    public var fileSystem: any FileSystem = PosixFileSystem()
    public var clock: any WallClock = SystemClock()

    public init(durability: Durability = .always) {
        self.durability = durability
    }
}
