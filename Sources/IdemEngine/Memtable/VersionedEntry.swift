/// Whether an entry holds a value or records a deletion.
public enum EntryKind: UInt8, Sendable {
    case value = 1
    case tombstone = 2
}

struct VersionedEntryHeader {
    var sequence: UInt64
    /// Milliseconds since the Unix epoch; 0 means "never expires".
    var expiresAt: Int64
    var keyCount: Int32
    var valueCount: Int32
    var kind: EntryKind
}

/// One version of one key: header plus key and value bytes in a single
/// allocation (the key first, then the value).
///
/// Invariant: immutable after `make` returns, which is what lets a reader
/// keep using an entry after releasing the memtable's lock.
final class VersionedEntry: ManagedBuffer<VersionedEntryHeader, UInt8>, RadixTreeLeaf {

    static func make(kind: EntryKind, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                     expiresAt: Int64, sequence: UInt64) -> VersionedEntry {
        let buffer = VersionedEntry.create(minimumCapacity: key.count + value.count) { _ in
            VersionedEntryHeader(sequence: sequence, expiresAt: expiresAt, keyCount: Int32(key.count),
                                valueCount: Int32(value.count), kind: kind)
        }
        buffer.withUnsafeMutablePointerToElements { elements in
            let raw = UnsafeMutableRawPointer(elements)
            if key.count > 0 { raw.copyMemory(from: key.baseAddress!, byteCount: key.count) }
            if value.count > 0 { (raw + key.count).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        }
        return unsafeDowncast(buffer, to: VersionedEntry.self)
    }

    static func make(kind: EntryKind, key: [UInt8], value: [UInt8], expiresAt: Int64, sequence: UInt64) -> VersionedEntry {
        key.withUnsafeBytes { k in value.withUnsafeBytes { v in
            make(kind: kind, key: k, value: v, expiresAt: expiresAt, sequence: sequence)
        } }
    }

    /// The header, read through its pointer: `ManagedBuffer.header` is a
    /// class property, and each read of one pays a dynamic exclusivity
    /// check (a thread-local access set) — on every lookup, merge step and
    /// flush step. The entry is immutable (see above), so no access can
    /// conflict.
    private var fields: VersionedEntryHeader {
        @inline(__always) get { withUnsafeMutablePointerToHeader { $0.pointee } }
    }

    var sequence: UInt64 { fields.sequence }
    var expiresAt: Int64 { fields.expiresAt }
    var kind: EntryKind { fields.kind }
    var isTombstone: Bool { fields.kind == .tombstone }

    /// True when the entry has an expiry at or before `now`: from that
    /// millisecond on it is invisible to readers.
    @inline(__always)
    func isExpired(at now: Int64) -> Bool {
        fields.expiresAt != 0 && fields.expiresAt <= now
    }

    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let count = Int(fields.keyCount)
        return try withUnsafeMutablePointerToElements { try body(UnsafeRawBufferPointer(start: $0, count: count)) }
    }

    /// `withKey` for bodies with a typed error.
    func withKeyBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let count = Int(fields.keyCount)
        let result = withUnsafeMutablePointerToElements { elements in
            Result { () throws(E) -> R in try body(UnsafeRawBufferPointer(start: elements, count: count)) }
        }
        return try result.get()
    }

    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let keyCount = Int(fields.keyCount)
        let valueCount = Int(fields.valueCount)
        return try withUnsafeMutablePointerToElements {
            try body(UnsafeRawBufferPointer(start: $0 + keyCount, count: valueCount))
        }
    }

    var key: [UInt8] { withKey { Array($0) } }
    var value: [UInt8] { withValue { Array($0) } }

    /// Bytes this entry holds in memory, roughly: payload plus header and
    /// object overhead. Drives the memtable's size accounting.
    var approximateFootprint: Int { Int(fields.keyCount) + Int(fields.valueCount) + 64 }
}
