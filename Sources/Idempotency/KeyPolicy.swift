/// Which bytes an idempotency key may contain.
public enum KeyCharacters: Sendable, Equatable {
    /// Any byte.
    case any
    /// Visible ASCII, 0x21 (`!`) to 0x7E (`~`): what headers and logs show safely.
    case printableASCII
}

/// Validates idempotency keys (their engine keys are `Keyspace`'s).
struct KeyPolicy: Sendable {
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
}
