import Crypto
import IdemEngine
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes idempotency keys: random UUIDs (v4), time-ordered UUIDs (v7,
/// RFC 9562), and *hybrid* keys the server can later recognise as its own.
///
/// A hybrid key is `prefix.payload`: a client-chosen readable prefix
/// (`[A-Za-z0-9_-]`, 1–64 characters) and the base64url (no padding) of 16
/// random bytes followed by the first 12 bytes of
/// HMAC-SHA256(secret, "idem-key-v1" ‖ prefix ‖ 0x00 ‖ random bytes).
/// `verify` recomputes the tag: a flipped byte, another prefix or another
/// secret fails. The secret never appears in descriptions or logs.
public struct KeyGenerator: Sendable, CustomStringConvertible {
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case secretTooShort(Int)
        case invalidPrefix(String)
        case secretUnreadable(String)

        public var description: String {
            switch self {
            case .secretTooShort(let count): "key secret is \(count) bytes; at least 16 are needed"
            case .invalidPrefix(let reason): "invalid key prefix: \(reason)"
            case .secretUnreadable(let reason): "cannot read the key secret: \(reason)"
            }
        }
    }

    private let secret: [UInt8]
    private static let domain = Array("idem-key-v1".utf8)
    private static let tagLength = 12
    private static let randomLength = 16

    public init(secret: [UInt8]) throws(Failure) {
        guard secret.count >= 16 else { throw .secretTooShort(secret.count) }
        self.secret = secret
    }

    /// Reads the secret from a file (trailing newline ignored).
    public static func loadingSecret(fromFile path: String, fileSystem: any FileSystem = PosixFileSystem()) throws(Failure) -> KeyGenerator {
        var bytes: [UInt8]
        do { bytes = try fileSystem.readFile(path) } catch { throw .secretUnreadable("\(error)") }
        while bytes.last == 0x0A || bytes.last == 0x0D { bytes.removeLast() }
        return try KeyGenerator(secret: bytes)
    }

    /// Reads the secret from an environment variable.
    public static func loadingSecret(fromEnvironment name: String) throws(Failure) -> KeyGenerator {
        guard let value = getenv(name) else { throw .secretUnreadable("environment variable \(name) is not set") }
        return try KeyGenerator(secret: Array(String(cString: value).utf8))
    }

    public var description: String { "KeyGenerator(secret: <redacted>)" }

    // MARK: UUIDs

    public static func uuid4() -> String {
        var bytes = randomBytes(16)
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        return format(uuid: bytes)
    }

    /// A UUIDv7: 48-bit Unix milliseconds, then random bits, so keys sort by
    /// creation time (kind to indexes and to partitions by time).
    public static func uuid7(milliseconds: Int64) -> String {
        var bytes = randomBytes(16)
        let time = UInt64(max(0, milliseconds)) & 0xFFFF_FFFF_FFFF
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: time >> (40 - 8 * UInt64(index))) }
        bytes[6] = bytes[6] & 0x0F | 0x70
        bytes[8] = bytes[8] & 0x3F | 0x80
        return format(uuid: bytes)
    }

    private static func format(uuid bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for (index, byte) in bytes.enumerated() {
            if [4, 6, 8, 10].contains(index) { text.append(UInt8(ascii: "-")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    // MARK: Hybrid keys

    public func hybrid(prefix: String) throws(Failure) -> String {
        let prefixBytes = Array(prefix.utf8)
        try Self.validate(prefix: prefixBytes)
        let random = randomBytes(Self.randomLength)
        return prefix + "." + Base64URL.encode(random + tag(prefix: prefixBytes, random: random))
    }

    /// Whether `key` is a hybrid key this generator (this secret) issued.
    public func verify(_ key: [UInt8]) -> Bool {
        guard let dot = key.lastIndex(of: UInt8(ascii: ".")) else { return false }
        let prefix = Array(key[..<dot])
        guard (try? Self.validate(prefix: prefix)) != nil,
              let payload = Base64URL.decode(Array(key[(dot + 1)...])),
              payload.count == Self.randomLength + Self.tagLength else { return false }
        let random = Array(payload[..<Self.randomLength])
        let expected = tag(prefix: prefix, random: random)
        return IdempotencyStore.constantTimeEquals(Array(payload[Self.randomLength...]), expected)
    }

    public func verify(_ key: String) -> Bool { verify(Array(key.utf8)) }

    private func tag(prefix: [UInt8], random: [UInt8]) -> [UInt8] {
        var message = Self.domain
        message.append(contentsOf: prefix)
        message.append(0)
        message.append(contentsOf: random)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        return Array(Array(mac).prefix(Self.tagLength))
    }

    private static func validate(prefix: [UInt8]) throws(Failure) {
        guard !prefix.isEmpty, prefix.count <= 64 else { throw .invalidPrefix("must be 1 to 64 characters") }
        let allowed: (UInt8) -> Bool = { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard prefix.allSatisfy(allowed) else { throw .invalidPrefix("only letters, digits, '_' and '-' are allowed") }
    }
}

/// RFC 4648 §5 base64url without padding.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for byte in chunk { value = value << 8 | UInt32(byte) }
            value <<= UInt32(8 * (3 - chunk.count))
            for position in 0..<(chunk.count + 1) {
                output.append(alphabet[Int((value >> UInt32(18 - 6 * position)) & 63)])
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        var index = 0
        while index < text.count {
            let chunk = text[index..<min(index + 4, text.count)]
            var value: UInt32 = 0
            for character in chunk {
                guard let digit = alphabet.firstIndex(of: character) else { return nil }
                value = value << 6 | UInt32(digit)
            }
            value <<= UInt32(6 * (4 - chunk.count))
            for position in 0..<(chunk.count - 1) { output.append(UInt8(truncatingIfNeeded: value >> UInt32(16 - 8 * position))) }
            // Non-canonical encodings (stray low bits) are refused: one key, one spelling.
            let unused = 6 * chunk.count - 8 * (chunk.count - 1)
            if unused > 0 && unused < 6 && value & ((1 << UInt32(6 * (4 - chunk.count) + unused)) - 1) != 0 { return nil }
            index += 4
        }
        return output
    }
}
