import Testing
@testable import RESP

@Suite struct RESPRequestParserTests {
    let parser = RESPRequestParser()

    func parse(_ text: String) -> RESPRequestParser.Result {
        Array(text.utf8).withUnsafeBytes { parser.parse($0) }
    }

    func parse(_ bytes: [UInt8]) -> RESPRequestParser.Result {
        bytes.withUnsafeBytes { parser.parse($0) }
    }

    func arguments(_ strings: String...) -> [[UInt8]] { strings.map { Array($0.utf8) } }

    @Test func multibulkCommands() {
        #expect(parse("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") == .command(arguments("GET", "k"), consumed: 20))
        // Binary payloads, empty arguments, pipelined leftovers untouched.
        let binary: [UInt8] = Array("*2\r\n$4\r\n".utf8) + [0, 0x0D, 0x0A, 0xFF] + Array("\r\n$0\r\n\r\n*1\r\n".utf8)
        #expect(parse(binary) == .command([[0, 0x0D, 0x0A, 0xFF], []], consumed: binary.count - 4))
        #expect(parse("*0\r\n") == .skip(consumed: 4))
        #expect(parse("*-1\r\n") == .skip(consumed: 5))
    }

    /// One argument list refilled request after request (as a connection
    /// does): each parse sees only its own request, whether the list was
    /// left holding a longer one, a half-parsed one, or is still held by a
    /// copy (a handler that kept its arguments) — which must keep its own.
    @Test func reusedArgumentListHoldsOnlyTheLatestRequest() {
        var arguments = RequestArguments()
        func parse(_ text: String) -> RESPRequestParser.Outcome {
            Array(text.utf8).withUnsafeBytes { parser.parse($0, into: &arguments) }
        }
        #expect(parse("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n") == .command(consumed: 33))
        let kept = arguments
        #expect(parse("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$9\r\nunfinish") == .incomplete)
        #expect(parse("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") == .command(consumed: 20))
        #expect(arguments.list == self.arguments("GET", "k"))
        #expect(Array(arguments[1]) == Array("k".utf8))
        #expect(arguments.withArgument(0) { Array($0) } == Array("GET".utf8))
        #expect(kept.list == self.arguments("SET", "key", "value"))
        #expect(parse("set  'a b' \"\\x41\"\r\n") == .command(consumed: 19))
        #expect(arguments.list == self.arguments("set", "a b", "A"))
        #expect(parse("*0\r\n") == .skip(consumed: 4))
        #expect(arguments.isEmpty)
    }

    @Test func incompleteInputWaitsAtEveryCut() {
        let full = Array("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n".utf8)
        for cut in 0..<full.count { #expect(parse(Array(full[..<cut])) == .incomplete, "cut at \(cut)") }
        #expect(parse(full) == .command(arguments("SET", "key", "value"), consumed: full.count))
        let inline = Array("PING hello\r\n".utf8)
        for cut in 0..<(inline.count - 1) { #expect(parse(Array(inline[..<cut])) == .incomplete) }
    }

    @Test func protocolErrorsUseRedisTexts() {
        #expect(parse("*x\r\n") == .protocolError("Protocol error: invalid multibulk length"))
        #expect(parse("*2000000\r\n") == .protocolError("Protocol error: invalid multibulk length"))
        #expect(parse("*1\r\n+OK\r\n") == .protocolError("Protocol error: expected '$', got '+'"))
        #expect(parse("*1\r\n$-5\r\n") == .protocolError("Protocol error: invalid bulk length"))
        #expect(parse("*1\r\n$01\r\nx\r\n") == .protocolError("Protocol error: invalid bulk length"))
        #expect(parse("*1\r\n$600000000\r\n") == .protocolError("Protocol error: invalid bulk length"))
        #expect(parse("\"unbalanced\r\n") == .protocolError("Protocol error: unbalanced quotes in request"))
        #expect(parse("GET \"k\"x\r\n") == .protocolError("Protocol error: unbalanced quotes in request"))
        let longInline = [UInt8](repeating: UInt8(ascii: "a"), count: 64 * 1024 + 1)
        #expect(parse(longInline) == .protocolError("Protocol error: too big inline request"))
        #expect(parse(Array("*".utf8) + [UInt8](repeating: UInt8(ascii: "1"), count: 64 * 1024 + 10))
                == .protocolError("Protocol error: too big mbulk count string"))
        #expect(parse(Array("*1\r\n$".utf8) + [UInt8](repeating: UInt8(ascii: "1"), count: 64 * 1024 + 10))
                == .protocolError("Protocol error: too big bulk count string"))
    }

    @Test func inlineCommandsFollowRedisQuoting() {
        #expect(parse("SET k v\r\n") == .command(arguments("SET", "k", "v"), consumed: 9))
        #expect(parse("  PING  \n") == .command(arguments("PING"), consumed: 9))
        #expect(parse("\r\n") == .skip(consumed: 2))
        #expect(parse("SET \"a b\" 'c d'\r\n") == .command(arguments("SET", "a b", "c d"), consumed: 17))
        #expect(parse("ECHO \"\\x41\\n\\t\\\\\\\"\"\n") == .command([Array("ECHO".utf8), [0x41, 0x0A, 0x09, 0x5C, 0x22]], consumed: 20))
        #expect(parse("ECHO 'it\\'s'\n") == .command(arguments("ECHO", "it's"), consumed: 13))
        #expect(parse("ECHO foo\"bar\"\n") == .command(arguments("ECHO", "foobar"), consumed: 14))
        #expect(parse("ECHO \"\"\n") == .command(arguments("ECHO", ""), consumed: 8))
        // A NUL ends the line, as in Redis's C string parsing.
        #expect(parse([UInt8]("GET a".utf8) + [0] + [UInt8](" b\n".utf8)) == .command(arguments("GET", "a"), consumed: 9))
    }
}

@Suite struct RESPEncoderTests {
    func text(_ value: RESPValue, _ version: RESPVersion) -> String {
        String(decoding: RESPEncoder.encode(value, version: version), as: UTF8.self)
    }

    @Test func repliesInBothProtocols() {
        #expect(text(.ok, .resp2) == "+OK\r\n")
        #expect(text(.error("ERR bad\r\ninjected"), .resp2) == "-ERR bad  injected\r\n")
        #expect(text(.integer(-42), .resp3) == ":-42\r\n")
        #expect(text(.bulk("hi"), .resp2) == "$2\r\nhi\r\n")
        #expect(text(.bulkString(nil), .resp2) == "$-1\r\n")
        #expect(text(.bulkString(nil), .resp3) == "_\r\n")
        #expect(text(.array(nil), .resp2) == "*-1\r\n")
        #expect(text(.null, .resp2) == "$-1\r\n")
        #expect(text(.boolean(true), .resp3) == "#t\r\n")
        #expect(text(.boolean(false), .resp2) == ":0\r\n")
        #expect(text(.double(1.5), .resp3) == ",1.5\r\n")
        #expect(text(.double(3), .resp2) == "$1\r\n3\r\n")
        let map = RESPValue.map([(.bulk("state"), .bulk("completed")), (.bulk("attempt"), .integer(2))])
        #expect(text(map, .resp3) == "%2\r\n$5\r\nstate\r\n$9\r\ncompleted\r\n$7\r\nattempt\r\n:2\r\n")
        #expect(text(map, .resp2) == "*4\r\n$5\r\nstate\r\n$9\r\ncompleted\r\n$7\r\nattempt\r\n:2\r\n")
        #expect(text(.set([.integer(1)]), .resp3) == "~1\r\n:1\r\n")
        #expect(text(.array([.bulk("a"), .array([])]), .resp2) == "*2\r\n$1\r\na\r\n*0\r\n")
    }
}

@Suite struct RESPIntegerTests {
    @Test func parsesAsRedisStringToLongLong() {
        #expect(RESPInteger.parse(Array("0".utf8)) == 0)
        #expect(RESPInteger.parse(Array("-42".utf8)) == -42)
        #expect(RESPInteger.parse(Array("9223372036854775807".utf8)) == Int64.max)
        #expect(RESPInteger.parse(Array("-9223372036854775808".utf8)) == Int64.min)
        for bad in ["", "-", "-0", "007", " 1", "1 ", "+1", "9223372036854775808", "1e3", "0x10"] {
            #expect(RESPInteger.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}
