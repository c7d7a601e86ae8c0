/// Writes applied atomically: all become visible together, all survive a
/// crash or none does (they share one WAL record).
public struct WriteBatch: Sendable {
    public struct Operation: Sendable, Equatable {
        public var kind: EntryKind
        public var key: [UInt8]
        public var value: [UInt8]
        /// Milliseconds since the Unix epoch; nil never expires.
        public var expiresAt: Int64?
    }

    public private(set) var operations: [Operation] = []

    public init() {}

    public var isEmpty: Bool { operations.isEmpty }
    public var count: Int { operations.count }

    public mutating func put(_ key: [UInt8], _ value: [UInt8], expiresAt: Int64? = nil) {
        operations.append(Operation(kind: .value, key: key, value: value, expiresAt: expiresAt))
    }

    public mutating func delete(_ key: [UInt8]) {
        operations.append(Operation(kind: .tombstone, key: key, value: [], expiresAt: nil))
    }

    mutating func append(_ operation: Operation) {
        operations.append(operation)
    }

    init(_ operation: Operation) {
        operations = [operation]
    }

    /// Checks every operation against the limits.
    func validate(_ options: EngineOptions) throws(EngineError) {
        for operation in operations {
            guard !operation.key.isEmpty else { throw .emptyKey }
            guard operation.key.count <= options.maxKeySize else {
                throw .keyTooLarge(size: operation.key.count, limit: options.maxKeySize)
            }
            guard operation.value.count <= options.maxValueSize else {
                throw .valueTooLarge(size: operation.value.count, limit: options.maxValueSize)
            }
            if let expiresAt = operation.expiresAt, expiresAt < 0 { throw .invalidExpiry(expiresAt) }
        }
    }
}

/// A change an `update` closure asks for.
public enum Mutation: Sendable, Equatable {
    case put(value: [UInt8], expiresAt: Int64?)
    case delete
}

/// The payload of a WAL `writeBatch` record (docs/FORMAT.md):
///
///     first sequence u64 | count u32 | count × entry
///     entry: kind u8 | expiresAt u64 (0 = none) | key length varint | key |
///            value length varint | value
///
/// Entry `i` carries sequence number `first + i`.
enum BatchCodec {
    static func encode(_ batch: WriteBatch, firstSequence: UInt64, into bytes: inout [UInt8]) {
        bytes.appendFixed64(firstSequence)
        bytes.appendFixed32(UInt32(batch.operations.count))
        for operation in batch.operations {
            bytes.append(operation.kind.rawValue)
            bytes.appendFixed64(UInt64(operation.expiresAt ?? 0))
            bytes.appendVarint(UInt64(operation.key.count))
            bytes.append(contentsOf: operation.key)
            bytes.appendVarint(UInt64(operation.value.count))
            bytes.append(contentsOf: operation.value)
        }
    }

    struct DecodingError: Error {
        var detail: String
    }

    /// Decodes a payload into memtable entries, calling `body` for each.
    /// Returns the last sequence number used.
    static func decode(_ payload: UnsafeRawBufferPointer, _ body: (VersionedEntry) -> Void) throws(DecodingError) -> UInt64 {
        var cursor = ByteCursor(payload)
        guard let first = cursor.readFixed64(), let count = cursor.readFixed32() else {
            throw DecodingError(detail: "batch header truncated")
        }
        guard count > 0 else { throw DecodingError(detail: "empty batch") }
        for index in 0..<UInt64(count) {
            guard let rawKind = cursor.readByte(), let kind = EntryKind(rawValue: rawKind) else {
                throw DecodingError(detail: "entry \(index): bad kind")
            }
            guard let expiresAt = cursor.readFixed64(), expiresAt <= UInt64(Int64.max) else {
                throw DecodingError(detail: "entry \(index): bad expiry")
            }
            guard let keyLength = cursor.readVarint(), keyLength <= UInt64(Int32.max),
                  let key = cursor.readSlice(Int(keyLength)) else {
                throw DecodingError(detail: "entry \(index): bad key")
            }
            guard let valueLength = cursor.readVarint(), valueLength <= UInt64(Int32.max),
                  let value = cursor.readSlice(Int(valueLength)) else {
                throw DecodingError(detail: "entry \(index): bad value")
            }
            body(VersionedEntry.make(kind: kind, key: key, value: value, expiresAt: Int64(expiresAt),
                                    sequence: first &+ index))
        }
        guard cursor.isAtEnd else { throw DecodingError(detail: "\(cursor.remaining) trailing bytes") }
        return first &+ UInt64(count) &- 1
    }
}
