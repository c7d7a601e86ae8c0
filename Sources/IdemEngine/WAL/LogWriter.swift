import Synchronization

/// Appends records to the current WAL segment, rolling to a new segment
/// when the size limit is reached.
///
/// Invariants:
/// - A new segment's header is synced, and its directory entry made durable,
///   before any record is written to it. WAL segments are normally created
///   ahead of need (`prepareNextSegment`), off the commit path, so that a roll
///   does no I/O but a write into the page cache.
/// - A WAL roll does not sync the segment it leaves: the new segment's
///   first record is a *segment link* giving the old segment's final
///   length, and the old segment stays in `unsyncedPredecessors` until a
///   sync covers it. Every sync (`filesToSync`) syncs those predecessors
///   before the current segment, so a write acknowledged as durable never
///   follows a predecessor that is not. Recovery that finds a segment
///   shorter than its successor's link knows the tail was never synced,
///   and keeps the prefix up to the shortfall (docs/FORMAT.md).
/// - A manifest roll syncs the old file before creating the new one.
/// - After a failed append, the file is cut back to its last good length,
///   so no partial record is ever followed by a later one.
///
/// Not thread-safe but for what says so: the engine's commit path
/// serialises `append` and `roll`; the segments rolled away from and the
/// segment prepared ahead are behind locks of their own, as other threads
/// sync the first and create the second.
final class LogWriter {
    enum Failure: Error {
        /// Nothing was written (any partial bytes were cut away): the
        /// caller may report the error and accept later writes.
        case writeFailed(IOFailure)
        /// The log's state on disk is uncertain; no further writes are safe.
        case unrecoverable(IOFailure)
    }

    let directory: String
    let fileSystem: any FileSystem
    let segmentSizeLimit: Int64
    let kind: LogFormat.Kind
    /// Segments are opened with `openForMappedAppending` (appends copy into
    /// a mapping; a segment may end in zeros). For a log synced rarely:
    /// under `fsync=always` each sync would pay for the mapping's extents.
    let mapsSegments: Bool
    private(set) var segmentNumber: UInt64
    private(set) var currentFile: any WritableFile
    /// Segments rolled away from whose tails may not be durable yet,
    /// oldest first (shared with whichever thread syncs them).
    private let unsyncedPredecessors = Mutex<[any WritableFile]>([])
    /// Segment numbers and the segment created ahead of need: shared with
    /// the thread that prepares segments (the only state here that is).
    private let ahead: Mutex<SegmentsAhead>
    /// Bytes written through this writer (headers included), for statistics.
    private(set) var bytesWritten: Int64 = 0
    /// Where the current segment's first data record goes (after the
    /// header and any segment link): a segment rolls only once it holds one.
    private var firstRecordOffset = Int64(LogFormat.segmentHeaderSize)

    /// Creates segment `segmentNumber` (which must not exist) and makes it durable.
    init(fileSystem: any FileSystem, directory: String, kind: LogFormat.Kind = .wal, segmentNumber: UInt64,
         segmentSizeLimit: Int64, mapsSegments: Bool = false) throws(IOFailure) {
        self.fileSystem = fileSystem
        self.directory = directory
        self.kind = kind
        self.segmentSizeLimit = segmentSizeLimit
        self.mapsSegments = mapsSegments && kind == .wal
        self.segmentNumber = segmentNumber
        self.ahead = Mutex(SegmentsAhead(nextNumber: segmentNumber + 1, lastUsed: segmentNumber))
        self.currentFile = try Self.createSegment(fileSystem: fileSystem, directory: directory, kind: kind, number: segmentNumber,
                                                 mapped: self.mapsSegments)
    }

    static func createSegment(fileSystem: any FileSystem, directory: String, kind: LogFormat.Kind,
                              number: UInt64, mapped: Bool) throws(IOFailure) -> any WritableFile {
        let path = directory.appendingPathComponent(kind.fileName(number))
        let file = try mapped ? fileSystem.openForMappedAppending(path) : fileSystem.openForAppending(path)
        guard file.size == 0 else {
            // Numbers are never reused; an existing file means a bug or a
            // foreign file, and appending to it would bury its contents.
            file.close()
            throw IOFailure(operation: "create (file already exists)", path: path, code: ErrorNumber.exists)
        }
        let header = LogFormat.header(kind: kind, number: number)
        try file.append(header[...])
        try file.sync()
        try fileSystem.syncDirectory(directory)
        return file
    }

    /// Frames and writes every record in `buffer`: one append per segment
    /// touched (normally exactly one).
    func append(_ buffer: inout LogBuffer) throws(Failure) {
        var index = 0
        while index < buffer.records.count {
            if currentFile.size > firstRecordOffset
                && currentFile.size + Int64(buffer.records[index].frameLength) > segmentSizeLimit {
                try roll()
            }
            // The run of records that fits in this segment (at least one).
            var offset = currentFile.size
            let runStart = index
            repeat {
                let record = buffer.records[index]
                if index > runStart && offset + Int64(record.frameLength) > segmentSizeLimit { break }
                let length = UInt32(record.payloadLength)
                let checksum = LogFormat.recordChecksum(payloadCRC: record.payloadCRC, type: record.type, length: length,
                                                        segment: segmentNumber, offset: UInt64(offset))
                buffer.bytes.storeFixed32(checksum, at: record.start)
                buffer.bytes.storeFixed32(length, at: record.start + 4)
                buffer.bytes[record.start + 8] = record.type.rawValue
                offset += Int64(record.frameLength)
                index += 1
            } while index < buffer.records.count
            let from = buffer.records[runStart].start
            let to = index < buffer.records.count ? buffer.records[index].start : buffer.bytes.count
            try write(buffer.bytes, from: from, to: to)
        }
    }

    private func write(_ bytes: [UInt8], from: Int, to: Int) throws(Failure) {
        let goodLength = currentFile.size
        do {
            try currentFile.append(bytes[from..<to])
            bytesWritten += Int64(to - from)
        } catch {
            do {
                try currentFile.truncate(to: goodLength)
            } catch let truncateFailure {
                throw .unrecoverable(truncateFailure)
            }
            throw .writeFailed(error)
        }
    }

    /// Every file a sync must cover, oldest first: the predecessors not
    /// yet known durable, then the current segment.
    var filesToSync: [any WritableFile] { unsyncedPredecessors.withLock { $0 } + [currentFile] }

    /// The rolled-away segments not yet known durable (safe from any thread).
    var rolledAwayUnsynced: [any WritableFile] { unsyncedPredecessors.withLock { $0 } }

    /// Records that `files` (from `filesToSync`) were synced (safe from any thread).
    func markSynced(_ files: [any WritableFile]) {
        guard !files.isEmpty else { return }
        unsyncedPredecessors.withLock { $0.removeAll { predecessor in files.contains { $0 === predecessor } } }
    }

    /// Syncs every file of `filesToSync` in order.
    func sync() throws(Failure) {
        let files = filesToSync
        do {
            for file in files { try file.sync() }
        } catch {
            throw .unrecoverable(error)
        }
        markSynced(files)
    }

    /// Creates the next WAL segment ahead of need, if none is ready (safe
    /// from any thread; the engine's maintenance thread calls it). A
    /// segment finished after a roll already moved past its number is
    /// removed: segments are used in number order only.
    func prepareNextSegment() {
        guard kind == .wal, let number = ahead.withLock({ $0.reserveForPreparation() }) else { return }
        let file = try? Self.createSegment(fileSystem: fileSystem, directory: directory, kind: kind, number: number,
                                           mapped: mapsSegments)
        let kept = ahead.withLock { $0.finishPreparation(number, file) }
        if !kept, let file {
            file.close()
            try? fileSystem.removeFile(file.path)
        }
    }

    /// Starts the next segment (see the type's invariants for what a WAL
    /// roll does and does not sync).
    func roll() throws(Failure) {
        guard kind == .wal else {
            let next = segmentNumber + 1
            do {
                try currentFile.sync()
                // The old file is not closed here: a concurrent periodic sync may
                // still hold it; it closes when the last reference goes.
                currentFile = try Self.createSegment(fileSystem: fileSystem, directory: directory, kind: kind, number: next,
                                                     mapped: mapsSegments)
            } catch {
                throw .unrecoverable(error)
            }
            segmentNumber = next
            firstRecordOffset = currentFile.size
            return
        }
        let (number, prepared) = ahead.withLock { $0.takeForRoll() }
        let file: any WritableFile
        if let prepared {
            file = prepared
        } else {
            do {
                file = try Self.createSegment(fileSystem: fileSystem, directory: directory, kind: kind, number: number,
                                              mapped: mapsSegments)
            } catch {
                throw .unrecoverable(error)
            }
        }
        let (oldNumber, oldLength) = (segmentNumber, currentFile.size)
        let old = currentFile
        unsyncedPredecessors.withLock { $0.append(old) }
        currentFile = file
        segmentNumber = number
        var link = LogBuffer()
        link.appendRecord(type: .segmentLink) {
            $0.appendFixed64(oldNumber)
            $0.appendFixed64(UInt64(oldLength))
        }
        do {
            try append(&link)
        } catch {
            // Half a roll: what recovery would make of it is uncertain.
            switch error {
            case .writeFailed(let failure), .unrecoverable(let failure): throw .unrecoverable(failure)
            }
        }
        firstRecordOffset = currentFile.size
    }

    func close() {
        currentFile.close()
        ahead.withLock { $0.prepared }?.close()
    }
}

/// WAL segment numbering with one segment prepared ahead.
///
/// Invariants: every number is handed out once (`nextNumber` only grows);
/// numbers are used in increasing order (`lastUsed`), so a prepared
/// segment whose number a roll has passed is discarded, never used.
struct SegmentsAhead {
    var nextNumber: UInt64
    var lastUsed: UInt64
    var prepared: (any WritableFile)?
    var preparedNumber: UInt64 = 0
    var preparing = false

    mutating func reserveForPreparation() -> UInt64? {
        guard prepared == nil, !preparing else { return nil }
        preparing = true
        defer { nextNumber += 1 }
        return nextNumber
    }

    /// Keeps a prepared file; false if it must be thrown away.
    mutating func finishPreparation(_ number: UInt64, _ file: (any WritableFile)?) -> Bool {
        preparing = false
        guard let file, number > lastUsed else { return false }
        prepared = file
        preparedNumber = number
        return true
    }

    /// The number of the next segment, and its file if one was prepared.
    mutating func takeForRoll() -> (UInt64, (any WritableFile)?) {
        if let file = prepared {
            prepared = nil
            lastUsed = preparedNumber
            return (preparedNumber, file)
        }
        defer { nextNumber += 1 }
        lastUsed = nextNumber
        return (nextNumber, nil)
    }
}
