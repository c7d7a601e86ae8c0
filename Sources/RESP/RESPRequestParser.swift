/// Splits a byte stream into Redis commands: RESP multibulk requests
/// (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline commands (`GET k\r\n`,
/// typed by a person over `nc`, with Redis's quoting rules). Pure: bytes in,
/// argument vectors out; no sockets, no channels.
///
/// Error texts and limits follow Redis (`networking.c`), because clients and
/// tests match on them; after a protocol error Redis replies and closes the
/// connection, and so should the caller.
public struct RESPRequestParser: Sendable {
    public struct Limits: Sendable {
        /// Longest inline command, and longest `*`/`$` header line.
        public var maxInlineLength = 64 * 1024
        /// Largest bulk argument (`proto-max-bulk-len`).
        public var maxBulkLength = 512 * 1024 * 1024
        /// Most arguments in one multibulk request.
        public var maxArguments = 1024 * 1024

        public init() {}
    }

    /// `Outcome` with the arguments as arrays of their own (`parse(_:)`:
    /// tests, fuzzing, anything off the hot path).
    public enum Result: Equatable, Sendable {
        case command([[UInt8]], consumed: Int)
        case skip(consumed: Int)
        case incomplete
        case protocolError(String)
    }

    /// What `parse(_:into:)` found.
    public enum Outcome: Equatable, Sendable {
        /// One complete command, its arguments in the list passed in, and
        /// the bytes it took.
        case command(consumed: Int)
        /// Bytes that form no command (an empty line, `*0`): drop them.
        case skip(consumed: Int)
        /// Wait for more bytes.
        case incomplete
        /// Reply `-ERR <message>` and close the connection.
        case protocolError(String)
    }

    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Parses the first command in `buffer` (which starts at a command
    /// boundary). Nothing is consumed unless a result says so.
    public func parse(_ buffer: UnsafeRawBufferPointer) -> Result {
        var arguments = RequestArguments()
        switch parse(buffer, into: &arguments) {
        case .command(let consumed): return .command(arguments.list, consumed: consumed)
        case .skip(let consumed): return .skip(consumed: consumed)
        case .incomplete: return .incomplete
        case .protocolError(let message): return .protocolError(message)
        }
    }

    /// Parses the first request in `buffer` into `arguments` (emptied
    /// first; on anything but `.command` its contents mean nothing).
    public func parse(_ buffer: UnsafeRawBufferPointer, into arguments: inout RequestArguments) -> Outcome {
        arguments.removeAll()
        guard let first = buffer.first else { return .incomplete }
        return first == UInt8(ascii: "*") ? parseMultibulk(buffer, into: &arguments) : parseInline(buffer, into: &arguments)
    }

    // MARK: Multibulk

    private func parseMultibulk(_ buffer: UnsafeRawBufferPointer, into arguments: inout RequestArguments) -> Outcome {
        var position = 0
        guard let countLine = headerLine(buffer, from: &position) else {
            return buffer.count > limits.maxInlineLength ? .protocolError("Protocol error: too big mbulk count string") : .incomplete
        }
        guard let count = Self.integer(buffer, countLine.lowerBound + 1..<countLine.upperBound), count <= Int64(limits.maxArguments) else {
            return .protocolError("Protocol error: invalid multibulk length")
        }
        guard count > 0 else { return .skip(consumed: position) }
        for _ in 0..<count {
            let lineStart = position
            guard let lengthLine = headerLine(buffer, from: &position) else {
                return buffer.count - lineStart > limits.maxInlineLength
                    ? .protocolError("Protocol error: too big bulk count string") : .incomplete
            }
            let marker = buffer[lengthLine.lowerBound]
            guard marker == UInt8(ascii: "$") else {
                return .protocolError("Protocol error: expected '$', got '\(Self.printable(marker))'")
            }
            guard let length = Self.integer(buffer, lengthLine.lowerBound + 1..<lengthLine.upperBound),
                  length >= 0, length <= Int64(limits.maxBulkLength) else {
                return .protocolError("Protocol error: invalid bulk length")
            }
            // The payload and its CRLF (which Redis skips without checking).
            guard buffer.count - position >= Int(length) + 2 else { return .incomplete }
            arguments.append(UnsafeRawBufferPointer(rebasing: buffer[position..<(position + Int(length))]))
            position += Int(length) + 2
        }
        return .command(consumed: position)
    }

    /// The line from `position` up to its CR (the LF must have arrived too);
    /// moves `position` past the CRLF. Nil when the line is incomplete.
    private func headerLine(_ buffer: UnsafeRawBufferPointer, from position: inout Int) -> Range<Int>? {
        let start = position
        var index = start
        let limit = min(buffer.count, start + limits.maxInlineLength + 2)
        while index < limit && buffer[index] != 0x0D { index += 1 }
        guard index < limit, index + 1 < buffer.count else { return nil }
        position = index + 2
        return start..<index
    }

    static func integer(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int64? {
        RESPInteger.parse(UnsafeRawBufferPointer(rebasing: buffer[range]))
    }

    private static func printable(_ byte: UInt8) -> String {
        (0x20...0x7E).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }

    // MARK: Inline

    private func parseInline(_ buffer: UnsafeRawBufferPointer, into arguments: inout RequestArguments) -> Outcome {
        let searchLimit = min(buffer.count, limits.maxInlineLength + 1)
        var newline = 0
        while newline < searchLimit && buffer[newline] != 0x0A { newline += 1 }
        guard newline < searchLimit else {
            return buffer.count > limits.maxInlineLength ? .protocolError("Protocol error: too big inline request") : .incomplete
        }
        var end = newline
        if end > 0 && buffer[end - 1] == 0x0D { end -= 1 }
        guard let words = Self.splitArguments(UnsafeRawBufferPointer(rebasing: buffer[0..<end])) else {
            return .protocolError("Protocol error: unbalanced quotes in request")
        }
        for word in words { arguments.append(word) }
        return words.isEmpty ? .skip(consumed: newline + 1) : .command(consumed: newline + 1)
    }

    /// Redis's `sdssplitargs`: words separated by white space; "double
    /// quotes" with \n \r \t \b \a \\ \" and \xHH escapes; 'single quotes'
    /// with \' only; a closing quote must end the word. A NUL byte ends the
    /// line. Nil on unbalanced quotes.
    static func splitArguments(_ line: UnsafeRawBufferPointer) -> [[UInt8]]? {
        var arguments: [[UInt8]] = []
        var index = 0
        func byte(_ offset: Int) -> UInt8 { offset < line.count ? line[offset] : 0 }
        func isSpace(_ value: UInt8) -> Bool { value == 0x20 || (0x09...0x0D).contains(value) }
        func hexValue(_ value: UInt8) -> UInt8? {
            switch value {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while true {
            while index < line.count && isSpace(line[index]) { index += 1 }
            guard index < line.count, line[index] != 0 else { return arguments }
            var current: [UInt8] = []
            // The open quote character, if inside a quoted part of the word.
            var quote: UInt8?
            var done = false
            while !done {
                let character = byte(index)
                if let open = quote {
                    let next = byte(index + 1)
                    if open == UInt8(ascii: "\""), character == UInt8(ascii: "\\"), next == UInt8(ascii: "x"),
                       let high = hexValue(byte(index + 2)), let low = hexValue(byte(index + 3)) {
                        current.append(high << 4 | low)
                        index += 3
                    } else if open == UInt8(ascii: "\""), character == UInt8(ascii: "\\"), next != 0 {
                        index += 1
                        switch next {
                        case UInt8(ascii: "n"): current.append(0x0A)
                        case UInt8(ascii: "r"): current.append(0x0D)
                        case UInt8(ascii: "t"): current.append(0x09)
                        case UInt8(ascii: "b"): current.append(0x08)
                        case UInt8(ascii: "a"): current.append(0x07)
                        default: current.append(next)
                        }
                    } else if open == UInt8(ascii: "'"), character == UInt8(ascii: "\\"), next == UInt8(ascii: "'") {
                        index += 1
                        current.append(next)
                    } else if character == open {
                        // A closing quote must end the word.
                        if next != 0 && !isSpace(next) { return nil }
                        done = true
                    } else if character == 0 {
                        return nil
                    } else {
                        current.append(character)
                    }
                } else {
                    switch character {
                    case 0x20, 0x0A, 0x0D, 0x09, 0x00: done = true
                    case UInt8(ascii: "\""), UInt8(ascii: "'"): quote = character
                    default: current.append(character)
                    }
                }
                // Past the end, `byte` reads NUL: the next round ends an
                // unquoted word or reports an unterminated quote.
                if index < line.count && byte(index) != 0 { index += 1 }
            }
            arguments.append(current)
        }
    }
}

/// Decimal integers as Redis parses them (`string2ll`): an optional minus,
/// digits without leading zeros (and no `-0`), no spaces, within 64 bits.
/// Used for request headers and for integer arguments alike.
public enum RESPInteger {
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var index = 0
        let negative = bytes[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "0") { return bytes.count - index == 1 && !negative ? 0 : nil }
        var magnitude: UInt64 = 0
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit <= 9 else { return nil }
            let (times, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(digit))
            guard !overflow1 && !overflow2 else { return nil }
            magnitude = sum
            index += 1
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    public static func parse(_ bytes: [UInt8]) -> Int64? {
        bytes.withUnsafeBytes { parse($0) }
    }
}
