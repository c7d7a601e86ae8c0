/// The log file layout shared by the write-ahead log and the manifest
/// (docs/FORMAT.md, "Log files", format version 1). The two kinds differ in
/// file name, magic and record type only.
///
/// A file is a 32-byte header followed by records packed end to end:
///
///     header:  magic (8: "IDEMWAL\0" or "IDEMMAN\0") | version u32 | flags u32 |
///              segment number u64 | masked crc32c of the previous 24 bytes (4) | zero (4)
///     record:  masked crc32c (4) | payload length u32 (4) | type u8 (1) | payload
///
/// The record checksum covers `payload ‖ type ‖ length ‖ segment number ‖
/// record offset`, so a record copied to another offset or another segment
/// (a recycled file, a misdirected write) never validates there.
enum LogFormat {
    /// The format version written: the WAL is at 3 (2: segment links; 3: a
    /// segment may end in zeros reserved by a mapped writer), the manifest
    /// at 1. Readers accept every version up to these.
    static func version(of kind: Kind) -> UInt32 { kind == .wal ? 3 : 1 }
    static let segmentHeaderSize = 32
    static let recordHeaderSize = 9

    enum RecordType: UInt8 {
        /// The payload is one encoded `WriteBatch` (see `BatchCodec`).
        case writeBatch = 1
        /// The payload is one encoded `VersionEdit` (manifest only).
        case versionEdit = 2
        /// WAL only, first in a segment started without syncing its
        /// predecessor: the predecessor's number and final length, u64 each.
        case segmentLink = 3
    }

    /// Which log a file belongs to.
    enum Kind {
        /// Write-ahead log segments: `wal-<20 digits>.log`.
        case wal
        /// The manifest: `MANIFEST-<20 digits>`.
        case manifest

        var magic: [UInt8] {
            switch self {
            case .wal: Array("IDEMWAL\0".utf8)
            case .manifest: Array("IDEMMAN\0".utf8)
            }
        }

        private var affixes: (prefix: String, suffix: String) {
            switch self {
            case .wal: ("wal-", ".log")
            case .manifest: ("MANIFEST-", "")
            }
        }

        func fileName(_ number: UInt64) -> String {
            let digits = String(number)
            return affixes.prefix + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + affixes.suffix
        }

        /// The number named by a file name, or nil for other files.
        func number(fromName name: String) -> UInt64? {
            let (prefix, suffix) = affixes
            guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
            let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
            guard digits.count == 20, digits.allSatisfy(\.isASCII) else { return nil }
            return UInt64(digits)
        }
    }

    static func segmentName(_ number: UInt64) -> String { Kind.wal.fileName(number) }
    static func segmentNumber(fromName name: String) -> UInt64? { Kind.wal.number(fromName: name) }

    static func header(kind: Kind, number: UInt64) -> [UInt8] {
        var header = kind.magic
        header.appendFixed32(version(of: kind))
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
