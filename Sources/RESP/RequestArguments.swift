/// One request's arguments (the command name first), packed into one byte
/// buffer: argument `i` is `bytes[ranges[i]]`.
///
/// Why not `[[UInt8]]`: that is one allocation per argument plus one for
/// the list — seven for a `SET key value NX EX 86400`, more than the rest
/// of the command costs. A connection keeps one `RequestArguments` and
/// refills it for every command (`removeAll` keeps the capacity), so a
/// command costs no allocation at all to parse. A handler that keeps the
/// arguments past its call (work handed to another thread) holds a copy,
/// and the connection's next refill then copies on write: correct, only
/// slower.
public struct RequestArguments: Sendable, Equatable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var ranges: [Range<Int>] = []

    public init() {}

    public init(_ arguments: [[UInt8]]) {
        for argument in arguments { append(argument) }
    }

    public var count: Int { ranges.count }
    public var isEmpty: Bool { ranges.isEmpty }

    /// Argument `index` as a slice of the packed buffer (no copy).
    public subscript(index: Int) -> ArraySlice<UInt8> {
        bytes[ranges[index]]
    }

    /// The arguments as separate arrays (for tests and cold paths).
    public var list: [[UInt8]] {
        ranges.map { Array(bytes[$0]) }
    }

    /// Argument `index`'s bytes, valid only inside `body`.
    public func withArgument<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let range = ranges[index]
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    public mutating func append(_ argument: UnsafeRawBufferPointer) {
        let start = bytes.count
        bytes.append(contentsOf: argument)
        ranges.append(start..<bytes.count)
    }

    public mutating func append(_ argument: [UInt8]) {
        argument.withUnsafeBytes { append($0) }
    }

    /// Empties the list, keeping the buffers for the next request (a
    /// buffer grown for a huge value is let go, so one big request does
    /// not pin its size on the connection for good).
    public mutating func removeAll() {
        if bytes.capacity > 64 * 1024 { bytes = [] } else { bytes.removeAll(keepingCapacity: true) }
        if ranges.capacity > 1024 { ranges = [] } else { ranges.removeAll(keepingCapacity: true) }
    }
}
