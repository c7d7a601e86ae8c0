/// Records waiting to be written to the log, packed as they will be on
/// disk: each record's 9-byte header is reserved in place ahead of its
/// payload and filled in by `LogWriter`, which alone knows the segment and
/// offset the checksum is bound to. The payload checksum is computed by the
/// producer (in parallel with other producers), so the writer only extends
/// it by 21 bytes per record and writes the whole buffer with one call.
struct LogBuffer {
    struct Record {
        /// Offset of the record header within `bytes`.
        var start: Int
        var payloadLength: Int
        var payloadCRC: CRC32C
        var type: LogFormat.RecordType
        var frameLength: Int { LogFormat.recordHeaderSize + payloadLength }
    }

    var bytes: [UInt8] = []
    var records: [Record] = []

    var isEmpty: Bool { records.isEmpty }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
    }

    /// Appends one record whose payload `encode` writes to the end of the
    /// byte array. Returns the payload length.
    @discardableResult
    mutating func appendRecord(type: LogFormat.RecordType, _ encode: (inout [UInt8]) -> Void) -> Int {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: LogFormat.recordHeaderSize))
        encode(&bytes)
        let payloadStart = start + LogFormat.recordHeaderSize
        var crc = CRC32C()
        bytes.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[payloadStart...])) }
        let length = bytes.count - payloadStart
        records.append(Record(start: start, payloadLength: length, payloadCRC: crc, type: type))
        return length
    }

    /// Drops the most recently appended record (used when it turns out to
    /// exceed a limit after encoding).
    mutating func removeLastRecord() {
        guard let last = records.popLast() else { return }
        bytes.removeLast(bytes.count - last.start)
    }
}
