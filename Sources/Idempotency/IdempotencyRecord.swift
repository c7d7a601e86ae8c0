#if canImport(CIdemPosix)
import CIdemPosix
#endif
import IdemEngine
import Synchronization

/// What Idem remembers about one idempotency key.
///
/// Invariants:
/// - `inProgress` records have an owner `token` and a `leaseDeadline`; the
///   owner's lease has lapsed once the clock reaches the deadline.
/// - `completed` records carry the `response` every retry replays; their
///   token is the one that completed them (so a retried `complete` by the
///   same owner is recognised).
/// - `attempt` counts acquisitions: 1 for the first, +1 per takeover.
public struct IdempotencyRecord: Sendable, Equatable {
    public enum State: UInt8, Sendable {
        case inProgress = 1
        case completed = 2
    }

    public var state: State
    /// Typically a SHA-256 of the canonical request; at most 64 bytes.
    public var fingerprint: [UInt8]?
    public var token: OwnerToken
    public var attempt: UInt32
    /// Milliseconds since the epoch; meaningful while `inProgress`.
    public var leaseDeadline: Int64
    /// Opaque progress saved by `checkpoint`, handed to the next attempt.
    public var recoveryPoint: [UInt8]?
    public var response: [UInt8]?
    public var createdAt: Int64
    public var completedAt: Int64?
    /// When the record (and so the key) is forgotten.
    public var expiresAt: Int64

    /// Milliseconds left on the lease at `now` (0 once lapsed).
    public func leaseRemaining(at now: Int64) -> Int64 {
        max(0, leaseDeadline - now)
    }
}

/// A 128-bit random owner token: whoever holds it may complete, extend,
/// checkpoint or abort the attempt it was issued for, and nobody else.
public struct OwnerToken: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses the 32-hex-digit form.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for index in stride(from: 0, to: 32, by: 2) {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.bytes = bytes
    }

    static func random() -> OwnerToken {
        OwnerToken(bytes: randomBytes(16))!
    }

    public var hex: String { String(decoding: hexDigits, as: UTF8.self) }

    /// The 32 lower-case hex digits as bytes, in one allocation (the form
    /// a reply carries: every `IDEM.BEGIN` that acquires sends one).
    public var hexDigits: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { digits, count in
            for (index, byte) in bytes.enumerated() {
                digits[2 * index] = Self.hexDigit(byte >> 4)
                digits[2 * index + 1] = Self.hexDigit(byte & 0xF)
            }
            count = 2 * bytes.count
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    public var description: String { hex }

    /// Compares in time independent of where the tokens differ, so a caller
    /// cannot learn a token byte by byte from response times.
    public func constantTimeEquals(_ other: OwnerToken) -> Bool {
        var difference: UInt8 = 0
        for index in 0..<16 { difference |= bytes[index] ^ other.bytes[index] }
        return difference == 0
    }

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The record's stored form (docs/FORMAT.md, "Idempotency record", version 1):
///
///     version u8 = 1 ‖ state u8 ‖ flags u8 ‖ token (16) ‖ attempt varint ‖
///     lease deadline varint ‖ created at varint ‖ completed at varint (0 = none) ‖
///     expires at varint ‖ [fingerprint] ‖ [recovery point] ‖ [response]
///
/// `flags` bit 0, 1, 2 say whether the fingerprint, recovery point and
/// response are present; each present field is `varint length ‖ bytes`.
enum RecordCodec {
    /// Also the value's `Keyspace.ValueType` byte.
    static let version: UInt8 = Keyspace.ValueType.idempotencyRecord.rawValue
    private static let maxVarintLength = 10

    static func encode(_ record: IdempotencyRecord) -> [UInt8] {
        var bytes: [UInt8] = []
        // Room for all of it at once: growing as it goes reallocated three
        // times per record.
        func room(_ field: [UInt8]?) -> Int { field.map { $0.count + maxVarintLength } ?? 0 }
        bytes.reserveCapacity(3 + record.token.bytes.count + 5 * maxVarintLength
                              + room(record.fingerprint) + room(record.recoveryPoint) + room(record.response))
        bytes.append(version)
        bytes.append(record.state.rawValue)
        var flags: UInt8 = 0
        if record.fingerprint != nil { flags |= 1 }
        if record.recoveryPoint != nil { flags |= 2 }
        if record.response != nil { flags |= 4 }
        bytes.append(flags)
        bytes.append(contentsOf: record.token.bytes)
        bytes.appendVarint(UInt64(record.attempt))
        for timestamp in [record.leaseDeadline, record.createdAt, record.completedAt ?? 0, record.expiresAt] {
            bytes.appendVarint(UInt64(max(0, timestamp)))
        }
        for field in [record.fingerprint, record.recoveryPoint, record.response] {
            guard let field else { continue }
            bytes.appendVarint(UInt64(field.count))
            bytes.append(contentsOf: field)
        }
        return bytes
    }

    struct DecodingError: Error, CustomStringConvertible {
        var description: String
    }

    static func decode(_ bytes: [UInt8]) throws(DecodingError) -> IdempotencyRecord {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(DecodingError) -> IdempotencyRecord in try decode(raw) }
        }
        return try decoded.get()
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodingError) -> IdempotencyRecord {
        var cursor = ByteCursor(bytes)
        return try decode(&cursor)
    }

    private static func decode(_ cursor: inout ByteCursor) throws(DecodingError) -> IdempotencyRecord {
        func timestamp() throws(DecodingError) -> Int64 {
            guard let value = cursor.readVarint(), value <= UInt64(Int64.max) else {
                throw DecodingError(description: "bad timestamp")
            }
            return Int64(value)
        }
        func field(_ present: Bool) throws(DecodingError) -> [UInt8]? {
            guard present else { return nil }
            guard let length = cursor.readVarint(), let bytes = cursor.readSlice(Int(clamping: length)) else {
                throw DecodingError(description: "field truncated")
            }
            return Array(bytes)
        }
        guard cursor.readByte() == version else { throw DecodingError(description: "unsupported record version") }
        guard let rawState = cursor.readByte(), let state = IdempotencyRecord.State(rawValue: rawState) else {
            throw DecodingError(description: "bad state")
        }
        guard let flags = cursor.readByte(), flags & ~7 == 0 else { throw DecodingError(description: "unknown flags") }
        guard let tokenBytes = cursor.readSlice(16) else { throw DecodingError(description: "record truncated") }
        guard let attempt = cursor.readVarint(), attempt <= UInt64(UInt32.max) else {
            throw DecodingError(description: "bad attempt")
        }
        let leaseDeadline = try timestamp()
        let createdAt = try timestamp()
        let completedAt = try timestamp()
        let expiresAt = try timestamp()
        let fingerprint = try field(flags & 1 != 0)
        let recoveryPoint = try field(flags & 2 != 0)
        let response = try field(flags & 4 != 0)
        guard cursor.isAtEnd else { throw DecodingError(description: "trailing bytes") }
        return IdempotencyRecord(state: state, fingerprint: fingerprint, token: OwnerToken(bytes: Array(tokenBytes))!,
                                 attempt: UInt32(attempt), leaseDeadline: leaseDeadline, recoveryPoint: recoveryPoint,
                                 response: response, createdAt: createdAt, completedAt: completedAt == 0 ? nil : completedAt,
                                 expiresAt: expiresAt)
    }
}

/// `count` bytes from the system's CSPRNG: small draws (owner tokens, key
/// ids) from `RandomPool`, large ones straight from the system.
func randomBytes(_ count: Int) -> [UInt8] {
    count <= RandomPool.largestDraw ? RandomPool.shared.take(count) : systemRandomBytes(count)
}

/// `count` bytes from the system's CSPRNG in one system call where the
/// platform allows (`SystemRandomNumberGenerator` makes one per 8 bytes).
func systemRandomBytes(_ count: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        #if canImport(CIdemPosix)
        // getrandom(2) fills up to 256 bytes at once and is not interrupted
        // once the pool is ready; loop anyway, and fall back on failure.
        var filled = 0
        while filled < count {
            let n = idem_getrandom(buffer.baseAddress! + filled, count - filled, 0)
            guard n > 0 else { break }
            filled += n
        }
        #else
        let filled = 0
        #endif
        if filled < count {
            var generator = SystemRandomNumberGenerator()
            for index in filled..<count { buffer[index] = UInt8.random(in: .min ... .max, using: &generator) }
        }
        initialized = count
    }
}

/// System CSPRNG output drawn 256 bytes per system call and handed out in
/// small pieces: an owner token per IDEM.BEGIN cost a `getrandom(2)` of its
/// own, one system call in five of the command.
///
/// Invariant: every byte is handed out at most once — `pool[next...]` is
/// unused, and what lies before `next` has been handed out and zeroed (so
/// a later memory disclosure shows no token already given).
final class RandomPool: Sendable {
    static let shared = RandomPool()
    /// One `getrandom` call's worth: the kernel serves up to 256 bytes
    /// without blocking or being interrupted.
    static let refillSize = 256
    static let largestDraw = 64

    private let state = Mutex<(pool: [UInt8], next: Int)>(([], 0))

    func take(_ count: Int) -> [UInt8] {
        precondition(count <= Self.largestDraw)
        return state.withLock { state in
            if state.pool.count - state.next < count {
                state.pool = systemRandomBytes(Self.refillSize)
                state.next = 0
            }
            let drawn = Array(state.pool[state.next..<(state.next + count)])
            for index in state.next..<(state.next + count) { state.pool[index] = 0 }
            state.next += count
            return drawn
        }
    }
}
