/// A look ahead at the requests waiting in a connection's input: where
/// each one's second argument — the key, for the commands that take one —
/// lies, found without parsing anything into arguments.
///
/// Why: a client that pipelines sends many requests in one read, and the
/// lookup each makes starts with cache misses. With the batch's keys known
/// before the first request runs, the server can start those loads for all
/// of them at once (`ReadPrefetcher` in the engine), so that they overlap
/// instead of being waited for one after another.
///
/// A hint only: it stops at the first thing that is not a complete
/// multibulk request (an inline command, a request still arriving, a
/// malformed one). `RESPRequestParser` decides what the bytes mean and
/// reports errors; nothing here is trusted beyond the buffer's bounds.
public enum PipelineLookahead {
    /// Fills `keys` with the ranges, in `buffer`, of the second argument of
    /// each complete multibulk request from the buffer's start (a request
    /// with fewer arguments contributes nothing but is stepped over), in
    /// order, until `keys` is full. Returns how many it filled and where
    /// the last request it looked at ends (0 when none was complete).
    public static func keyRanges(in buffer: UnsafeRawBufferPointer,
                                 into keys: UnsafeMutableBufferPointer<Range<Int>>) -> (count: Int, end: Int) {
        var end = 0
        var found = 0
        var position = 0
        while found < keys.count, position < buffer.count, buffer[position] == UInt8(ascii: "*") {
            position += 1
            guard let count = header(buffer, &position) else { break }
            var key: Range<Int>?
            var complete = true
            for index in 0..<count {
                guard position < buffer.count, buffer[position] == UInt8(ascii: "$") else {
                    complete = false
                    break
                }
                position += 1
                guard let length = header(buffer, &position), buffer.count - position >= length + 2 else {
                    complete = false
                    break
                }
                if index == 1 { key = position..<(position + length) }
                position += length + 2
            }
            guard complete else { break }
            end = position
            if let key {
                keys[found] = key
                found += 1
            }
        }
        return (found, end)
    }

    /// A non-negative decimal of at most 18 digits ending in CRLF, from
    /// `position`; moves past the CRLF. Nil for anything else (including a
    /// header not yet complete).
    private static func header(_ buffer: UnsafeRawBufferPointer, _ position: inout Int) -> Int? {
        var value = 0
        var index = position
        while index < buffer.count {
            let byte = buffer[index]
            if byte == 0x0D {
                guard index > position, index + 1 < buffer.count, buffer[index + 1] == 0x0A else { return nil }
                position = index + 2
                return value
            }
            guard index - position < 18 else { return nil }
            let digit = byte &- UInt8(ascii: "0")
            guard digit <= 9 else { return nil }
            value = value * 10 + Int(digit)
            index += 1
        }
        return nil
    }
}
