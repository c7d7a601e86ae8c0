/// The write-ahead log's on-disk layout (docs/FORMAT.md, "WAL segment",
/// format version 1).
///
/// A segment file `wal-<20-digit number>.log` is a 32-byte header followed
/// by records packed end to end:
///
///     header:  magic "IDEMWAL\0" (8) | version u32 | flags u32 |
///              segment number u64 | masked crc32c of the previous 24 bytes (4) | zero (4)
///     record:  masked crc32c (4) | payload length u32 (4) | type u8 (1) | payload
///
/// The record checksum covers `payload ‖ type ‖ length ‖ segment number ‖
/// record offset`, so a record copied to another offset or another segment
/// (a recycled file, a misdirected write) never validates there.
enum LogFormat {
    static let magic: [UInt8] = Array("IDEMWAL\0".utf8)
    static let version: UInt32 = 1
    static let segmentHeaderSize = 32
    static let recordHeaderSize = 9

    enum RecordType: UInt8 {
        /// The payload is one encoded `WriteBatch` (see `BatchCodec`).
        case writeBatch = 1
    }

    static let segmentPrefix = "wal-"
    static let segmentSuffix = ".log"

    static func segmentName(_ number: UInt64) -> String {
        let digits = String(number)
        return segmentPrefix + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + segmentSuffix
    }

    /// The segment number named by a file name, or nil for other files.
    static func segmentNumber(fromName name: String) -> UInt64? {
        guard name.hasPrefix(segmentPrefix), name.hasSuffix(segmentSuffix) else { return nil }
        let digits = name.dropFirst(segmentPrefix.count).dropLast(segmentSuffix.count)
        guard digits.count == 20, digits.allSatisfy(\.isASCII) else { return nil }
        return UInt64(digits)
    }

    static func segmentHeader(number: UInt64) -> [UInt8] {
        var header = magic
        header.appendFixed32(version)
        header.appendFixed32(0)
        header.appendFixed64(number)
        var crc = CRC32C()
        crc.update(header)
        header.appendFixed32(crc.masked)
        header.appendFixed32(0)
        return header
    }

    /// Completes a record checksum whose payload part is already in `crc`.
    @inline(__always)
    static func recordChecksum(payloadCRC crc: CRC32C, type: RecordType, length: UInt32,
                               segment: UInt64, offset: UInt64) -> UInt32 {
        var crc = crc
        crc.update(type.rawValue)
        crc.update(length)
        crc.update(segment)
        crc.update(offset)
        return crc.masked
    }
}
