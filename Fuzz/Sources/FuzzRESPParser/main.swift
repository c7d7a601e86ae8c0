import RESP

/// Arbitrary bytes as a client's request stream: the parser must make
/// progress or stop (never loop, crash or read out of bounds), and every
/// command it finds must survive a round trip through the multibulk
/// encoding unchanged. The look ahead at pipelined keys must agree with
/// the parser on every request both accept: the same keys, in order.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var limits = RESPRequestParser.Limits()
    limits.maxInlineLength = 1024
    limits.maxBulkLength = 4096
    limits.maxArguments = 64
    let parser = RESPRequestParser(limits: limits)
    var offset = 0
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let lookahead = withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: 64) { ranges in
        let (count, end) = PipelineLookahead.keyRanges(in: input, into: ranges)
        precondition(end <= size, "the look ahead stays in the buffer")
        return (keys: ranges[..<count].map { range in
            precondition(range.lowerBound >= 0 && range.upperBound <= end, "a key inside what was looked at")
            return Array(input[range])
        }, end: end)
    }
    var keysSeen = 0
    while offset < size {
        switch parser.parse(UnsafeRawBufferPointer(rebasing: input[offset...])) {
        case .command(let arguments, let consumed):
            precondition(consumed > 0 && consumed <= size - offset, "a command must consume bytes it has")
            precondition(!arguments.isEmpty, "commands have at least one argument")
            if input[offset] == UInt8(ascii: "*"), arguments.count >= 2, offset + consumed <= lookahead.end {
                precondition(keysSeen < lookahead.keys.count && lookahead.keys[keysSeen] == arguments[1],
                             "the look ahead found this request's key")
                keysSeen += 1
            }
            var encoded = Array("*\(arguments.count)\r\n".utf8)
            for argument in arguments {
                encoded += Array("$\(argument.count)\r\n".utf8) + argument + [0x0D, 0x0A]
            }
            // Inline commands are bounded by line length, not argument count
            // (as in Redis), so re-parse with the default, larger limits.
            let again = encoded.withUnsafeBytes { RESPRequestParser().parse($0) }
            precondition(again == .command(arguments, consumed: encoded.count), "multibulk round trip")
            offset += consumed
        case .skip(let consumed):
            precondition(consumed > 0 && consumed <= size - offset, "a skip must consume bytes it has")
            offset += consumed
        case .incomplete, .protocolError:
            return 0
        }
    }
    return 0
}
