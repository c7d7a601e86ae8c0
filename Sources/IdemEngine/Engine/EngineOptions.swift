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
    public var recovery: RecoveryMode = .strict
    public var maxKeySize = 1024
    public var maxValueSize = 8 << 20
    /// The largest encoded write batch (one WAL record).
    public var maxBatchBytes = 64 << 20
    /// A WAL segment rolls once it would grow past this.
    public var walSegmentSize: Int64 = 64 << 20
    public var fileSystem: any FileSystem = PosixFileSystem()
    public var clock: any WallClock = SystemClock()

    public init(durability: Durability = .always) {
        self.durability = durability
    }
}
