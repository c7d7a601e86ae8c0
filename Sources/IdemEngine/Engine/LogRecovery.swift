/// Rebuilds the memtable from the WAL when an engine opens, and leaves the
/// log ready for a fresh segment.
///
/// Rules (see `LogSegmentScan` for the damage kinds):
/// - Segments replay in number order; records within a segment in order.
/// - A torn tail of the *newest* segment is an interrupted write: cut away
///   silently (counted in the report). A newest segment too short to hold
///   its header, or all zeros (created at full size, never written), was
///   created but never written: removed.
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
    /// Whether the new log maps its segments (`LogWriter.mapsSegments`).
    let mapsSegments: Bool
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
        // Numbers are never reused, not even those of segments dropped below.
        let highestNumber = segments.last ?? 0
        var scans = SegmentScanCache(fileSystem: fileSystem, directory: directory, salvage: mode == .salvage)

        for (index, number) in segments.enumerated() {
            let name = LogFormat.segmentName(number)
            let path = directory.appendingPathComponent(name)
            let (bytes, scan) = try scans.scan(number)
            // The successor that holds records decides two things: whether
            // this segment is the newest (only the newest may be torn), and,
            // through its segment link, how long this one was when the log
            // rolled away from it without syncing it.
            let continuation = try scans.continuation(of: index, in: segments, validEnd: scan.validEnd)
            if case .inconsistent(let offset, let reason) = continuation {
                guard mode == .salvage else { throw .corruption(file: path, offset: offset, detail: reason) }
                damaged = true
                report.droppedRanges.append(.init(file: path, offset: offset, length: 0, reason: reason))
            }
            let (isNewest, cutShort) = (continuation.isNewest, continuation.endsLog)

            var batchEntries: [VersionedEntry] = []
            for record in scan.records {
                guard record.type == .writeBatch else {
                    guard mode == .salvage else {
                        throw .corruption(file: path, offset: record.offset, detail: "record type \(record.type) in a WAL segment")
                    }
                    damaged = true
                    continue
                }
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
            if scan.isUnused {
                // A header and nothing else (an open with no writes, a
                // segment prepared ahead): it holds no state.
                try remove(path)
                continue
            }

            for damage in scan.damage {
                switch damage {
                case .missingHeader where isNewest:
                    try remove(path)
                case .tornTail(let offset) where isNewest || cutShort:
                    try truncate(path, to: offset)
                    report.tornTailBytes += bytes.count - offset
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
            if cutShort {
                for later in segments[(index + 1)...] {
                    let laterPath = directory.appendingPathComponent(LogFormat.segmentName(later))
                    report.tornTailBytes += (try? scans.scan(later).bytes.count) ?? 0
                    try remove(laterPath)
                }
                report.tornTailFile = path
                segments.removeSubrange((index + 1)...)
                break
            }
        }

        let nextSegment = max(highestNumber + 1, obsoleteBelow)
        let writer: LogWriter
        do {
            writer = try LogWriter(fileSystem: fileSystem, directory: directory, segmentNumber: nextSegment,
                                   segmentSizeLimit: segmentSizeLimit, mapsSegments: mapsSegments)
        } catch {
            throw .io(error)
        }
        if damaged {
            try rewrite(into: writer, replacing: segments)
        }
        report.lastSequence = lastSequence
        report.durationSeconds = seconds(since: started)
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

/// Reads and scans WAL segments for recovery and `DataDirectory.check`,
/// keeping the last two (a segment is scanned as its predecessor's
/// successor, then again as itself), and pairs each segment with its
/// successor — the rules both apply.
struct SegmentScanCache {
    let fileSystem: any FileSystem
    let directory: String
    let salvage: Bool
    private var recent: [(number: UInt64, bytes: [UInt8], scan: LogSegmentScan)] = []

    init(fileSystem: any FileSystem, directory: String, salvage: Bool) {
        self.fileSystem = fileSystem
        self.directory = directory
        self.salvage = salvage
    }

    mutating func scan(_ number: UInt64) throws(EngineError) -> (bytes: [UInt8], scan: LogSegmentScan) {
        if let hit = recent.first(where: { $0.number == number }) { return (hit.bytes, hit.scan) }
        let path = directory.appendingPathComponent(LogFormat.segmentName(number))
        let bytes: [UInt8]
        do { bytes = try fileSystem.readFile(path) } catch { throw .io(error) }
        let scan = bytes.withUnsafeBytes { LogSegmentScan(bytes: $0, segmentNumber: number, salvage: salvage) }
        recent.append((number, bytes, scan))
        if recent.count > 2 { recent.removeFirst() }
        return (bytes, scan)
    }

    /// How the log goes on after segment `segments[index]`, whose valid
    /// records end at `validEnd`.
    enum Continuation {
        /// A later segment holds records and links to this one whole (or
        /// was started after syncing it): this segment must be intact.
        case continues
        /// Nothing later holds anything durable: only this segment may be torn.
        case newest
        /// The log rolled on without syncing this segment, and part of what
        /// followed was lost (this segment's tail, or a whole later segment):
        /// the log ends here — its torn tail is cut and every later segment
        /// dropped, so what survives is a prefix of what was written.
        case endsHere
        /// The successor's link contradicts this segment.
        case inconsistent(offset: Int, reason: String)

        var isNewest: Bool { if case .newest = self { true } else { false } }
        var endsLog: Bool { if case .endsHere = self { true } else { false } }
    }

    mutating func continuation(of index: Int, in segments: [UInt64], validEnd: Int) throws(EngineError) -> Continuation {
        for later in segments[(index + 1)...] {
            let laterScan = try scan(later).scan
            if laterScan.holdsNothingDurable { continue }
            guard let link = laterScan.predecessor else { return .continues }
            let number = segments[index]
            if link.number > number { return .endsHere }
            if link.number < number || link.length < validEnd {
                return .inconsistent(offset: min(link.length, validEnd),
                                     reason: "segment \(later) links to segment \(link.number) of \(link.length) bytes")
            }
            return link.length > validEnd ? .endsHere : .continues
        }
        return .newest
    }
}
