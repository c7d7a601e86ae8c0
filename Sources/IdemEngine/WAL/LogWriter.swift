/// Appends records to the current WAL segment, rolling to a new segment
/// when the size limit is reached.
///
/// Invariants:
/// - Every segment but the newest is complete and synced: a roll syncs the
///   old segment before the new one is created. Recovery therefore treats a
///   damaged tail as torn only in the newest segment.
/// - A new segment's header is synced, and its directory entry made durable,
///   before any record is written to it.
/// - After a failed append, the file is cut back to its last good length,
///   so no partial record is ever followed by a later one.
///
/// Not thread-safe: the engine's commit path serialises `append` and
/// `roll`. `currentFile` may be synced concurrently by the periodic syncer.
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
    private(set) var segmentNumber: UInt64
    private(set) var currentFile: any WritableFile
    /// Bytes written through this writer (headers included), for statistics.
    private(set) var bytesWritten: Int64 = 0

    /// Creates segment `segmentNumber` (which must not exist) and makes it durable.
    init(fileSystem: any FileSystem, directory: String, kind: LogFormat.Kind = .wal, segmentNumber: UInt64,
         segmentSizeLimit: Int64) throws(IOFailure) {
        self.fileSystem = fileSystem
        self.directory = directory
        self.kind = kind
        self.segmentSizeLimit = segmentSizeLimit
        self.segmentNumber = segmentNumber
        self.currentFile = try Self.createSegment(fileSystem: fileSystem, directory: directory, kind: kind, number: segmentNumber)
    }

    static func createSegment(fileSystem: any FileSystem, directory: String, kind: LogFormat.Kind,
                              number: UInt64) throws(IOFailure) -> any WritableFile {
        let path = directory.appendingPathComponent(kind.fileName(number))
        let file = try fileSystem.openForAppending(path)
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
            if currentFile.size > Int64(LogFormat.segmentHeaderSize)
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

    func sync() throws(Failure) {
        do {
            try currentFile.sync()
        } catch {
            throw .unrecoverable(error)
        }
    }

    /// Syncs the current segment and starts the next one.
    func roll() throws(Failure) {
        do {
            try currentFile.sync()
            let next = segmentNumber + 1
            // The old file is not closed here: a concurrent periodic sync may
            // still hold it; it closes when the last reference goes.
            currentFile = try Self.createSegment(fileSystem: fileSystem, directory: directory, kind: kind, number: next)
            segmentNumber = next
        } catch {
            throw .unrecoverable(error)
        }
    }

    func close() {
        currentFile.close()
    }
}
