import IdemEngine

/// The one layout every data type shares inside the engine, so that a name
/// holds at most one value of one type (docs/FORMAT.md, "Keyspace").
///
/// Engine key: `0x6B ('k') ‖ namespace length u8 ‖ namespace ‖ key`. The
/// length prefix keeps tenants apart: no namespace's keys are a prefix
/// range of another's.
///
/// Engine value: `type u8 ‖ body`. `0x00` is a plain string (body = the
/// bytes); `0x01` is an idempotency record, version 1 (the type byte is the
/// record's version byte). A reader meeting another type than it expects
/// answers "wrong type" rather than misreading the bytes.
public enum Keyspace {
    public static let tag: UInt8 = 0x6B
    public static let maxNamespaceLength = 255

    public enum ValueType: UInt8, Sendable {
        case string = 0x00
        case idempotencyRecord = 0x01

        /// The name `TYPE` and `SCAN ... TYPE` use.
        public var name: String {
            switch self {
            case .string: "string"
            case .idempotencyRecord: "idempotency"
            }
        }
    }

    public static func engineKey(namespace: [UInt8], key: [UInt8]) throws(IdempotencyError) -> [UInt8] {
        try engineKey(namespace: namespace, key: key[...])
    }

    /// `engineKey` for a key that is part of a larger buffer (a request's
    /// arguments), copied once into the result.
    public static func engineKey(namespace: [UInt8], key: ArraySlice<UInt8>) throws(IdempotencyError) -> [UInt8] {
        guard namespace.count <= maxNamespaceLength else {
            throw .invalidNamespace("\(namespace.count) bytes, the limit is \(maxNamespaceLength)")
        }
        return key.withUnsafeBytes { key in
            [UInt8](unsafeUninitializedCapacity: 2 + namespace.count + key.count) { buffer, count in
                count = layOut(namespace: namespace, key: key, into: UnsafeMutableRawBufferPointer(buffer))
            }
        }
    }

    /// Calls `body` with the engine key of `key` in `namespace`, built in
    /// temporary storage rather than an array: for hints made per key of a
    /// batch (`ReadPrefetcher`), where allocating would cost more than the
    /// hint saves. Returns false, without calling `body`, for a namespace
    /// over the limit. Not generic: called across modules, a generic one
    /// instantiated type metadata on every call.
    @discardableResult
    public static func withEngineKey(namespace: [UInt8], key: UnsafeRawBufferPointer,
                                     _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard namespace.count <= maxNamespaceLength else { return false }
        withUnsafeTemporaryAllocation(byteCount: 2 + namespace.count + key.count, alignment: 1) { buffer in
            let length = layOut(namespace: namespace, key: key, into: buffer)
            body(UnsafeRawBufferPointer(rebasing: buffer[..<length]))
        }
        return true
    }

    /// Writes the engine key of `key` in `namespace` (at most
    /// `maxNamespaceLength` bytes) at the start of `buffer`, which has room
    /// for it; returns its length. The one place the layout is written.
    private static func layOut(namespace: [UInt8], key: UnsafeRawBufferPointer,
                               into buffer: UnsafeMutableRawBufferPointer) -> Int {
        buffer[0] = tag
        buffer[1] = UInt8(namespace.count)
        let keyStart = 2 + namespace.count
        namespace.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[2..<keyStart]).copyMemory(from: $0) }
        UnsafeMutableRawBufferPointer(rebasing: buffer[keyStart..<(keyStart + key.count)]).copyMemory(from: key)
        return keyStart + key.count
    }

    /// The engine-key prefix of every key in `namespace`.
    public static func prefix(namespace: [UInt8]) throws(IdempotencyError) -> [UInt8] {
        try engineKey(namespace: namespace, key: [])
    }

    /// The user's key inside an engine key of `namespace` (the inverse of `engineKey`).
    public static func userKey(_ engineKey: [UInt8], namespace: [UInt8]) -> ArraySlice<UInt8> {
        engineKey[min(engineKey.count, 2 + namespace.count)...]
    }

    /// The type of a stored value; nil for an empty or unknown one (damage,
    /// or a newer format), which callers report instead of misreading.
    public static func type(of value: UnsafeRawBufferPointer) -> ValueType? {
        value.first.flatMap(ValueType.init(rawValue:))
    }

    public static func type(of stored: StoredValue) -> ValueType? {
        stored.withValue { type(of: $0) }
    }

    public static func encodeString(_ bytes: [UInt8]) -> [UInt8] {
        encodeString(bytes[...])
    }

    public static func encodeString(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var value: [UInt8] = []
        value.reserveCapacity(bytes.count + 1)
        value.append(ValueType.string.rawValue)
        value.append(contentsOf: bytes)
        return value
    }

    /// The string a stored value of type `.string` holds, copied once.
    public static func decodeString(_ stored: StoredValue) -> [UInt8] {
        stored.withValue { Array($0.dropFirst()) }
    }
}
