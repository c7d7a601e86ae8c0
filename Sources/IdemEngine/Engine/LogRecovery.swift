/// Rebuilds the memtable from the WAL when an engine opens, and leaves the
/// log ready for a fresh segment.
///
/// Rules (see `LogSegmentScan` for the damage kinds):
/// - Segments replay in number order; records within a segment in order.
/// - A torn tail of the *newest* segment is an interrupted write: cut away
///   silently (counted in the report). A newest segment too short to hold
///   its header was created but never written: removed.
/// - Anything else that fails validation is corruption. `.strict` refuses
///   to open and names the file and offset; `.salvage` keeps every valid
///   record, reports each dropped range, and then rewrites the surviving
///   state into one fresh segment so the next open is clean.
struct LogRecovery {
    let fileSystem: any FileSystem
    let directory: String
    let mode: RecoveryMode
    let memtable: Memtable
    let segmentSizeLimit: Int64
    /// Segments below this are covered by tables (the manifest's log
    /// number): they are deleted, not replayed.
    let obsoleteBelow: UInt64

    /// What recovery hands to the engine: a writer on a new, empty segment,
    /// the next sequence number, and the report.
    struct Outcome {
        var logWriter: LogWriter
        var nextSequence: UInt64
        var report: RecoveryReport
    }

    func run() throws(EngineError) -> Outcome {
        let started = monotonicNanoseconds()
        var report = RecoveryReport()
        var segments = try existingSegments()
        for number in segments where number < obsoleteBelow {
            try remove(directory.appendingPathComponent(LogFormat.segmentName(number)))
        }
        segments.removeAll { $0 < obsoleteBelow }
        var lastSequence: UInt64 = 0
        var damaged = false

        for (index, number) in segments.enumerated() {
            let isNewest = index == segments.count - 1
            let name = LogFormat.segmentName(number)
            let path = directory.appendingPathComponent(name)
            let bytes: [UInt8]
            do { bytes = try fileSystem.readFile(path) } catch { throw .io(error) }
            let scan = bytes.withUnsafeBytes { LogSegmentScan(bytes: $0, segmentNumber: number, salvage: mode == .salvage) }

            var batchEntries: [VersionedEntry] = []
            for record in scan.records {
                batchEntries.removeAll(keepingCapacity: true)
                let decoded = bytes.withUnsafeBytes { raw in
                    Result { () throws(BatchCodec.DecodingError) -> UInt64 in
                        try BatchCodec.decode(UnsafeRawBufferPointer(rebasing: raw[record.payload])) { entry in
                            batchEntries.append(entry)
                        }
                    }
                }
                switch decoded {
                case .success(let last):
                    // Applied only once wholly decoded: a batch is atomic.
                    memtable.apply(batchEntries)
                    report.entriesReplayed += batchEntries.count
                    lastSequence = max(lastSequence, last)
                    report.recordsReplayed += 1
                case .failure(let error):
                    // The checksum held, so the writer itself wrote this:
                    // treat it as corruption all the same, never guess.
                    guard mode == .salvage else {
                        throw .corruption(file: path, offset: record.offset, detail: "undecodable batch: \(error.detail)")
                    }
                    damaged = true
                    report.droppedRanges.append(.init(file: path, offset: record.offset,
                                                      length: record.payload.upperBound - record.offset,
                                                      reason: "undecodable batch: \(error.detail)"))
                }
            }
            report.segmentsReplayed += 1
            if scan.records.isEmpty && scan.damage.isEmpty {
                // A header and nothing else (an open with no writes): it
                // holds no state, so it need not outlive this recovery.
                try remove(path)
                continue
            }

            for damage in scan.damage {
                switch damage {
                case .missingHeader where isNewest:
                    try remove(path)
                case .tornTail(let offset) where isNewest:
                    try truncate(path, to: offset)
                    report.tornTailBytes = bytes.count - offset
                    report.tornTailFile = path
                case .missingHeader, .badHeader, .tornTail, .corruption:
                    let (offset, length, reason) = Self.describe(damage, fileSize: bytes.count)
                    guard mode == .salvage else {
                        throw .corruption(file: path, offset: offset, detail: reason)
                    }
                    damaged = true
                    report.droppedRanges.append(.init(file: path, offset: offset, length: length, reason: reason))
                }
            }
        }

        let nextSegment = max((segments.last ?? 0) + 1, obsoleteBelow)
        let writer: LogWriter
        do {
            writer = try LogWriter(fileSystem: fileSystem, directory: directory, segmentNumber: nextSegment,
                                   segmentSizeLimit: segmentSizeLimit)
        } catch {
            throw .io(error)
        }
        if damaged {
            try rewrite(into: writer, replacing: segments)
        }
        report.lastSequence = lastSequence
        report.durationSeconds = Double(monotonicNanoseconds() - started) / 1e9
        return Outcome(logWriter: writer, nextSequence: lastSequence + 1, report: report)
    }

    private func existingSegments() throws(EngineError) -> [UInt64] {
        do {
            return try fileSystem.listDirectory(directory).compactMap(LogFormat.segmentNumber(fromName:)).sorted()
        } catch {
            throw .io(error)
        }
    }

    private static func describe(_ damage: LogSegmentScan.Damage, fileSize: Int) -> (offset: Int, length: Int, reason: String) {
        switch damage {
        case .missingHeader:
            return (0, fileSize, "segment shorter than its header")
        case .badHeader(let reason):
            return (0, fileSize, "bad segment header: \(reason)")
        case .tornTail(let offset):
            return (offset, fileSize - offset, "incomplete record in a segment that is not the newest")
        case .corruption(let offset, let resume, let reason):
            return (offset, resume - offset, "\(reason); a valid record follows at offset \(resume)")
        }
    }

    private func truncate(_ path: String, to length: Int) throws(EngineError) {
        do {
            let file = try fileSystem.openForAppending(path)
            defer { file.close() }
            try file.truncate(to: Int64(length))
            try file.sync()
        } catch {
            throw .io(error)
        }
    }

    private func remove(_ path: String) throws(EngineError) {
        do {
            try fileSystem.removeFile(path)
            try fileSystem.syncDirectory(directory)
        } catch {
            throw .io(error)
        }
    }

    /// Salvage's last step: writes every surviving entry (tombstones too)
    /// into the new segment, syncs it, and only then removes the damaged
    /// segments, so a crash at any point leaves a directory that recovers
    /// to the same state.
    private func rewrite(into writer: LogWriter, replacing segments: [UInt64]) throws(EngineError) {
        var buffer = LogBuffer()
        func flush() throws(EngineError) {
            guard !buffer.isEmpty else { return }
            do throws(LogWriter.Failure) {
                try writer.append(&buffer)
            } catch {
                switch error {
                case .writeFailed(let io), .unrecoverable(let io): throw .io(io)
                }
            }
            buffer.removeAll()
        }
        for entry in memtable.allEntries() {
            var batch = WriteBatch()
            batch.append(.init(kind: entry.kind, key: entry.key, value: entry.value,
                               expiresAt: entry.expiresAt == 0 ? nil : entry.expiresAt))
            buffer.appendRecord(type: .writeBatch) { BatchCodec.encode(batch, firstSequence: entry.sequence, into: &$0) }
            if buffer.bytes.count >= 1 << 20 { try flush() }
        }
        try flush()
        do throws(LogWriter.Failure) { try writer.sync() } catch {
            switch error {
            case .writeFailed(let io), .unrecoverable(let io): throw .io(io)
            }
        }
        for number in segments {
            let path = directory.appendingPathComponent(LogFormat.segmentName(number))
            if fileSystem.fileExists(path) {
                do { try fileSystem.removeFile(path) } catch { throw .io(error) }
            }
        }
        do { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
    }
}
