/// The SSTable layout (docs/FORMAT.md, "SSTable", format version 2):
///
///     data block 1 ‖ trailer … data block n ‖ trailer
///     filter block ‖ trailer      (bloom filter over every key; pass-all when the point index filters)
///     index block ‖ trailer       (last key of each data block → handle)
///     properties block ‖ trailer
///     point index block ‖ trailer (optional: key hash → data block and restart)
///     footer (64 bytes)
///
///     trailer: compression kind u8 ‖ masked crc32c (4) of
///              stored bytes ‖ kind ‖ file number u64 ‖ block offset u64
///     footer:  filter, index, properties, point index handles (offset u64 ‖ size u32 each;
///              size 0: no point index) ‖ format version u32 ‖ magic "IDEMSST\0" ‖
///              masked crc32c (4) of the preceding 60 bytes ‖ file number u64
///
/// Version 1 (still read) had no point index and a 52-byte footer of three
/// handles; both footers end in version ‖ magic ‖ checksum, which is how a
/// reader tells them apart.
///
/// Binding each checksum to the file number and offset means a block read
/// from the wrong place, or a file renamed over another, fails validation.
enum TableFormat {
    static let magic: [UInt8] = Array("IDEMSST\0".utf8)
    static let version: UInt32 = 2
    /// The footer of each version this build reads, by version.
    static let footerSizes: [UInt32: Int] = [1: 52, 2: 64]
    /// Version, magic and checksum: the end every footer shares.
    static let footerTailSize = 16
    static let trailerSize = 5
    static let fileSuffix = ".sst"
    /// The handle that says a block is absent (a present block is never empty).
    static let absentBlock = BlockHandle(offset: 0, size: 0)

    static func fileName(_ number: UInt64) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits + fileSuffix
    }

    static func fileNumber(fromName name: String) -> UInt64? {
        guard name.hasSuffix(fileSuffix) else { return nil }
        let digits = name.dropLast(fileSuffix.count)
        guard digits.count == 12, digits.allSatisfy(\.isASCII) else { return nil }
        return UInt64(digits)
    }

    static func blockChecksum(_ stored: UnsafeRawBufferPointer, kind: CompressionKind, fileNumber: UInt64, offset: UInt64) -> UInt32 {
        var crc = CRC32C()
        crc.update(stored)
        crc.update(kind.rawValue)
        crc.update(fileNumber)
        crc.update(offset)
        return crc.masked
    }
}

/// Where a block is in its file: its offset and stored size (trailer excluded).
struct BlockHandle: Equatable {
    var offset: UInt64
    var size: UInt32

    func encode(into bytes: inout [UInt8]) {
        bytes.appendVarint(offset)
        bytes.appendVarint(UInt64(size))
    }

    static func decode(_ cursor: inout ByteCursor) -> BlockHandle? {
        guard let offset = cursor.readVarint(), let size = cursor.readVarint(), size <= UInt64(UInt32.max) else { return nil }
        return BlockHandle(offset: offset, size: UInt32(size))
    }
}

/// The value stored for each key in a data block:
/// `kind u8 ‖ sequence varint ‖ expiresAt varint (0 = none) ‖ value bytes`.
enum TableEntryCodec {
    static func encodedLength(_ entry: VersionedEntry) -> Int {
        1 + varintLength(entry.sequence) + varintLength(UInt64(entry.expiresAt)) + entry.withValue { $0.count }
    }

    static func encode(_ entry: VersionedEntry, into bytes: inout [UInt8]) {
        bytes.append(entry.kind.rawValue)
        bytes.appendVarint(entry.sequence)
        bytes.appendVarint(UInt64(entry.expiresAt))
        entry.withValue { bytes.append(contentsOf: $0) }
    }

    static func decode(key: [UInt8], value: UnsafeRawBufferPointer) throws(TableCorruption) -> VersionedEntry {
        let decoded = key.withUnsafeBytes { key in
            Result { () throws(TableCorruption) -> VersionedEntry in try decode(key: key, value: value) }
        }
        return try decoded.get()
    }

    static func decode(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(TableCorruption) -> VersionedEntry {
        var cursor = ByteCursor(value)
        guard let rawKind = cursor.readByte(), let kind = EntryKind(rawValue: rawKind),
              let sequence = cursor.readVarint(), let expiresAt = cursor.readVarint(), expiresAt <= UInt64(Int64.max) else {
            throw TableCorruption(detail: "bad entry header")
        }
        let payload = UnsafeRawBufferPointer(rebasing: value[cursor.offset...])
        return VersionedEntry.make(kind: kind, key: key, value: payload, expiresAt: Int64(expiresAt), sequence: sequence)
    }

    static func varintLength(_ value: UInt64) -> Int {
        var length = 1
        var remaining = value >> 7
        while remaining != 0 {
            length += 1
            remaining >>= 7
        }
        return length
    }
}

/// Facts about one table, stored in its properties block and (the subset
/// the engine plans with) in the manifest.
public struct TableProperties: Sendable, Equatable {
    public var entries: UInt64 = 0
    public var tombstones: UInt64 = 0
    public var minSequence: UInt64 = .max
    public var maxSequence: UInt64 = 0
    /// Smallest and largest non-zero expiry; 0 when no entry expires.
    public var minExpiry: Int64 = 0
    public var maxExpiry: Int64 = 0
    public var partition: Int64 = 0
    public var tier: Tier = .hot
    public var compression: CompressionKind = .none
    public var createdAt: Int64 = 0
    public var smallestKey: [UInt8] = []
    public var largestKey: [UInt8] = []
    public var dataBlocks: UInt64 = 0
    public var rawKeyBytes: UInt64 = 0
    public var rawValueBytes: UInt64 = 0

    /// Accounts for one entry; the builder sets `largestKey` once at the end.
    mutating func record(_ entry: VersionedEntry, key: UnsafeRawBufferPointer) {
        if entries == 0 { smallestKey = Array(key) }
        entries += 1
        if entry.isTombstone { tombstones += 1 }
        minSequence = min(minSequence, entry.sequence)
        maxSequence = max(maxSequence, entry.sequence)
        if entry.expiresAt != 0 {
            minExpiry = minExpiry == 0 ? entry.expiresAt : min(minExpiry, entry.expiresAt)
            maxExpiry = max(maxExpiry, entry.expiresAt)
        }
        rawKeyBytes += UInt64(key.count)
        rawValueBytes += UInt64(entry.withValue { $0.count })
    }

    func encode() -> [UInt8] {
        var bytes: [UInt8] = []
        for value in [entries, tombstones, minSequence, maxSequence, UInt64(bitPattern: minExpiry),
                      UInt64(bitPattern: maxExpiry), UInt64(bitPattern: partition), UInt64(tier.rawValue),
                      UInt64(compression.rawValue), UInt64(bitPattern: createdAt), dataBlocks, rawKeyBytes, rawValueBytes] {
            bytes.appendVarint(value)
        }
        bytes.appendVarint(UInt64(smallestKey.count))
        bytes.append(contentsOf: smallestKey)
        bytes.appendVarint(UInt64(largestKey.count))
        bytes.append(contentsOf: largestKey)
        return bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(TableCorruption) -> TableProperties {
        var cursor = ByteCursor(raw)
        var numbers: [UInt64] = []
        for _ in 0..<13 {
            guard let value = cursor.readVarint() else { throw TableCorruption(detail: "properties truncated") }
            numbers.append(value)
        }
        guard let tier = Tier(rawValue: UInt8(truncatingIfNeeded: numbers[7])), numbers[7] <= 255,
              let compression = CompressionKind(rawValue: UInt8(truncatingIfNeeded: numbers[8])), numbers[8] <= 255 else {
            throw TableCorruption(detail: "bad tier or compression in properties")
        }
        guard let smallestLength = cursor.readVarint(), let smallest = cursor.readSlice(Int(clamping: smallestLength)),
              let largestLength = cursor.readVarint(), let largest = cursor.readSlice(Int(clamping: largestLength)),
              cursor.isAtEnd else {
            throw TableCorruption(detail: "bad key range in properties")
        }
        return TableProperties(
            entries: numbers[0], tombstones: numbers[1], minSequence: numbers[2], maxSequence: numbers[3],
            minExpiry: Int64(bitPattern: numbers[4]), maxExpiry: Int64(bitPattern: numbers[5]),
            partition: Int64(bitPattern: numbers[6]), tier: tier, compression: compression,
            createdAt: Int64(bitPattern: numbers[9]), smallestKey: Array(smallest), largestKey: Array(largest),
            dataBlocks: numbers[10], rawKeyBytes: numbers[11], rawValueBytes: numbers[12])
    }
}

/// Where a table lives and how it is compressed: `hot` tables are fresh
/// from flushes and compactions (lz4), `cold` ones were rewritten with zstd
/// once old enough, possibly into another directory.
public enum Tier: UInt8, Sendable, CaseIterable {
    case hot = 0
    case cold = 1
}
