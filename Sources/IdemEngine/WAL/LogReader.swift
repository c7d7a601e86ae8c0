/// Reads one WAL segment from its bytes and classifies any damage.
///
/// A record that fails validation is a *torn tail* when no valid record
/// starts anywhere after it (a crash cut the last write short), and
/// *corruption* when one does (bytes in the middle of the log changed).
/// Recovery may truncate a torn tail of the newest segment; corruption is
/// never silently skipped. Zeros from the end of the last record to the end
/// of the file are neither: they are space a mapped writer reserved ahead
/// (`PosixMappedAppendFile`), and no record is ever all zeros (a record's
/// length is at least 1 and its type nonzero).
struct LogSegmentScan {
    struct Record {
        var offset: Int
        var type: LogFormat.RecordType
        var payload: Range<Int>
    }

    enum Damage: Equatable {
        /// The file is shorter than a segment header.
        case missingHeader
        case badHeader(String)
        /// Bytes from `offset` to the end hold no valid record.
        case tornTail(offset: Int)
        /// Bytes `offset..<resumeOffset` are invalid, and a valid record
        /// starts at `resumeOffset`.
        case corruption(offset: Int, resumeOffset: Int, reason: String)
    }

    /// The records after the header, but for a leading segment link.
    var records: [Record] = []
    /// The predecessor's number and final length, from the segment link
    /// this segment starts with (a WAL segment the log rolled into without
    /// syncing the one before).
    var predecessor: (number: UInt64, length: Int)?
    /// Damage found, in file order. With `salvage` the scan continues past
    /// corruption; without, it stops at the first.
    var damage: [Damage] = []
    /// End of the last valid record (or of the header).
    var validEnd = 0

    /// Nothing but a header: a segment opened or prepared and never used.
    var isUnused: Bool { records.isEmpty && damage.isEmpty && predecessor == nil }

    /// Nothing valid past an intact header: never used, or nothing written
    /// to it became durable (a power loss left only a torn tail — the
    /// segment link a roll writes first included). Such a segment says
    /// nothing about the segment before it: no write in it was ever
    /// acknowledged, so the log may end before it.
    var holdsNothingDurable: Bool {
        records.isEmpty && predecessor == nil && damage.allSatisfy { if case .tornTail = $0 { true } else { false } }
    }

    /// Scans `bytes`, the contents of segment `number`.
    init(bytes: UnsafeRawBufferPointer, kind: LogFormat.Kind = .wal, segmentNumber number: UInt64, salvage: Bool) {
        // Created but never written: shorter than its header, or — a
        // segment made at its full size and mapped — nothing but zeros (a
        // kill between the file's creation and its header's write).
        guard bytes.count >= LogFormat.segmentHeaderSize, !bytes.allSatisfy({ $0 == 0 }) else {
            damage.append(.missingHeader)
            return
        }
        if let problem = Self.headerProblem(bytes, kind: kind, number: number) {
            damage.append(.badHeader(problem))
            return
        }
        var offset = LogFormat.segmentHeaderSize
        validEnd = offset
        while offset < bytes.count {
            switch Self.validate(bytes, at: offset, segment: number) {
            case .valid(let record):
                if kind == .wal && record.type == .segmentLink && record.offset == LogFormat.segmentHeaderSize
                    && record.payload.count == 16 {
                    predecessor = (bytes.loadFixed64(at: record.payload.lowerBound),
                                   Int(clamping: bytes.loadFixed64(at: record.payload.lowerBound + 8)))
                } else {
                    records.append(record)
                }
                offset = record.payload.upperBound
                validEnd = offset
            case .invalid(let reason):
                // Zeros to the end: space reserved ahead, not damage.
                if Self.isZero(bytes, from: offset) { return }
                guard let resume = Self.nextValidRecord(bytes, after: offset, segment: number) else {
                    damage.append(.tornTail(offset: offset))
                    return
                }
                damage.append(.corruption(offset: offset, resumeOffset: resume, reason: reason))
                guard salvage else { return }
                offset = resume
            }
        }
    }

    private enum Validation {
        case valid(Record)
        case invalid(String)
    }

    private static func validate(_ bytes: UnsafeRawBufferPointer, at offset: Int, segment: UInt64) -> Validation {
        let remaining = bytes.count - offset
        guard remaining >= LogFormat.recordHeaderSize else { return .invalid("truncated record header") }
        let stored = bytes.loadFixed32(at: offset)
        let length = bytes.loadFixed32(at: offset + 4)
        guard let type = LogFormat.RecordType(rawValue: bytes[offset + 8]) else {
            return .invalid("unknown record type \(bytes[offset + 8])")
        }
        guard Int(length) <= remaining - LogFormat.recordHeaderSize, length > 0 else {
            return .invalid("record length \(length) exceeds the file")
        }
        let payloadStart = offset + LogFormat.recordHeaderSize
        let payload = payloadStart..<(payloadStart + Int(length))
        var crc = CRC32C()
        crc.update(UnsafeRawBufferPointer(rebasing: bytes[payload]))
        let expected = LogFormat.recordChecksum(payloadCRC: crc, type: type, length: length,
                                                segment: segment, offset: UInt64(offset))
        guard expected == stored else { return .invalid("checksum mismatch") }
        return .valid(Record(offset: offset, type: type, payload: payload))
    }

    private static func isZero(_ bytes: UnsafeRawBufferPointer, from offset: Int) -> Bool {
        UnsafeRawBufferPointer(rebasing: bytes[offset...]).allSatisfy { $0 == 0 }
    }

    /// The first offset after `offset` where a valid record starts.
    private static func nextValidRecord(_ bytes: UnsafeRawBufferPointer, after offset: Int, segment: UInt64) -> Int? {
        var candidate = offset + 1
        while candidate + LogFormat.recordHeaderSize <= bytes.count {
            if case .valid = validate(bytes, at: candidate, segment: segment) { return candidate }
            candidate += 1
        }
        return nil
    }

    private static func headerProblem(_ bytes: UnsafeRawBufferPointer, kind: LogFormat.Kind, number: UInt64) -> String? {
        guard bytes[0..<8].elementsEqual(kind.magic) else { return "bad magic" }
        var crc = CRC32C()
        crc.update(UnsafeRawBufferPointer(rebasing: bytes[0..<24]))
        guard crc.masked == bytes.loadFixed32(at: 24) else { return "header checksum mismatch" }
        let version = bytes.loadFixed32(at: 8)
        guard version >= 1 && version <= LogFormat.version(of: kind) else { return "unsupported format version \(version)" }
        let recorded = bytes.loadFixed64(at: 16)
        guard recorded == number else { return "header names segment \(recorded), file name says \(number)" }
        return nil
    }
}
