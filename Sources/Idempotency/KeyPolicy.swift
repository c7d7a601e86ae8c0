/// Which bytes an idempotency key may contain.
public enum KeyCharacters: Sendable, Equatable {
    /// Any byte.
    case any
    /// Visible ASCII, 0x21 (`!`) to 0x7E (`~`): what headers and logs show safely.
    case printableASCII
}

/// Validates keys and namespaces and maps them to engine keys.
///
/// Engine key layout (docs/FORMAT.md): `0x69 ('i') ‖ namespace length u8 ‖
/// namespace ‖ key`. The tag byte keeps idempotency records apart from any
/// other data a server stores in the same engine; the length prefix keeps
/// tenants apart (no namespace is a prefix of another's keys).
struct KeyPolicy: Sendable {
    static let recordTag: UInt8 = 0x69
    static let maxNamespaceLength = 255

    var minimumLength: Int
    var maximumLength: Int
    var characters: KeyCharacters

    func validate(_ key: [UInt8]) throws(IdempotencyError) {
        guard !key.isEmpty else { throw .invalidKey("empty") }
        guard key.count >= minimumLength else { throw .invalidKey("shorter than \(minimumLength) bytes") }
        guard key.count <= maximumLength else { throw .invalidKey("\(key.count) bytes, the limit is \(maximumLength)") }
        if characters == .printableASCII, let bad = key.firstIndex(where: { $0 < 0x21 || $0 > 0x7E }) {
            throw .invalidKey("byte 0x\(String(key[bad], radix: 16)) at offset \(bad) is not printable ASCII")
        }
    }

    static func engineKey(namespace: [UInt8], key: [UInt8]) throws(IdempotencyError) -> [UInt8] {
        guard namespace.count <= maxNamespaceLength else {
            throw .invalidNamespace("\(namespace.count) bytes, the limit is \(maxNamespaceLength)")
        }
        var engineKey: [UInt8] = [recordTag, UInt8(namespace.count)]
        engineKey.reserveCapacity(2 + namespace.count + key.count)
        engineKey.append(contentsOf: namespace)
        engineKey.append(contentsOf: key)
        return engineKey
    }

    /// The engine-key prefix of every record in `namespace`.
    static func prefix(namespace: [UInt8]) throws(IdempotencyError) -> [UInt8] {
        try engineKey(namespace: namespace, key: [])
    }
}
