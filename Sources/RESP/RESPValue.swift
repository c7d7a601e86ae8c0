/// A reply in the Redis serialization protocol. RESP3-only kinds are
/// downgraded by `RESPEncoder` when the connection speaks RESP2.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    /// `-PREFIX message`: the first word is the error code clients match on.
    case error(String)
    case integer(Int64)
    /// nil is the null bulk string (`$-1` in RESP2).
    case bulkString([UInt8]?)
    /// nil is the null array (`*-1` in RESP2).
    case array([RESPValue]?)
    /// RESP3 `_` (RESP2: null bulk string).
    case null
    /// RESP3 `#t` / `#f` (RESP2: integer 1 / 0).
    case boolean(Bool)
    /// RESP3 `,` (RESP2: bulk string).
    case double(Double)
    /// RESP3 `%` (RESP2: flat array of alternating keys and values).
    case map([(RESPValue, RESPValue)])
    /// RESP3 `~` (RESP2: array).
    case set([RESPValue])

    public static func == (lhs: RESPValue, rhs: RESPValue) -> Bool {
        switch (lhs, rhs) {
        case (.simpleString(let a), .simpleString(let b)): a == b
        case (.error(let a), .error(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.bulkString(let a), .bulkString(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.null, .null): true
        case (.boolean(let a), .boolean(let b)): a == b
        case (.double(let a), .double(let b)): a == b || (a.isNaN && b.isNaN)
        case (.map(let a), .map(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.set(let a), .set(let b)): a == b
        default: false
        }
    }

    public static let ok = RESPValue.simpleString("OK")

    public static func bulk(_ string: String) -> RESPValue { .bulkString(Array(string.utf8)) }
}

/// Which protocol a connection speaks (`HELLO 3` switches to RESP3).
public enum RESPVersion: Int, Sendable {
    case resp2 = 2
    case resp3 = 3
}
