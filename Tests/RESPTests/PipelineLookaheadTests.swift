import Testing
@testable import RESP

/// The look ahead at pipelined keys: exact ranges, and a stop — never a
/// wrong range — at whatever is not a complete multibulk request.
@Suite struct PipelineLookaheadTests {
    /// The keys found in `text`, and where the look ended.
    func look(_ text: String, room: Int = 16) -> (keys: [String], end: Int) {
        let buffer = Array(text.utf8)
        return buffer.withUnsafeBytes { raw in
            withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: room) { ranges in
                let (count, end) = PipelineLookahead.keyRanges(in: raw, into: ranges)
                return (ranges[..<count].map { String(decoding: buffer[$0], as: UTF8.self) }, end)
            }
        }
    }

    static let set = "*6\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$2\r\nv1\r\n$2\r\nNX\r\n$2\r\nEX\r\n$5\r\n86400\r\n"
    static let get = "*2\r\n$3\r\nGET\r\n$5\r\nkey:2\r\n"
    static let ping = "*1\r\n$4\r\nPING\r\n"

    @Test func findsTheSecondArgumentOfEachCompleteRequest() {
        let text = Self.set + Self.ping + Self.get + "*3\r\n$3\r\nDEL\r\n$0\r\n\r\n$1\r\nx\r\n"
        let found = look(text)
        #expect(found.keys == ["key:1", "key:2", ""], "PING has no key and is stepped over; an empty key is a key")
        #expect(found.end == text.utf8.count)
    }

    @Test func stopsAtTheFirstIncompleteRequest() {
        let whole = Self.set + Self.get
        for cut in 0..<Self.get.utf8.count {
            let text = Self.set + String(decoding: Self.get.utf8.prefix(cut), as: UTF8.self)
            let found = look(text)
            #expect(found.keys == ["key:1"], "cut at \(cut)")
            #expect(found.end == Self.set.utf8.count, "cut at \(cut)")
        }
        #expect(look(whole).keys == ["key:1", "key:2"])
    }

    @Test func stopsAtWhatIsNotAMultibulkRequest() {
        #expect(look("SET a b\r\n" + Self.get).keys == [], "an inline command ends the look")
        #expect(look(Self.get + "PING\r\n" + Self.get).keys == ["key:2"])
        #expect(look(Self.get + "*2\r\n+3\r\nGET\r\n$1\r\nk\r\n" + Self.get).keys == ["key:2"], "a bad marker")
        #expect(look(Self.get + "*x\r\n" + Self.get).keys == ["key:2"], "a bad count")
        #expect(look(Self.get + "*-1\r\n" + Self.get).keys == ["key:2"], "a negative count")
        #expect(look(Self.get + "*2\r\n$3\rxGET\r\n$1\r\nk\r\n").keys == ["key:2"], "CR without LF")
        #expect(look(Self.get + "*2\r\n$3\r\nGET\r\n$1234567890123456789\r\nk\r\n").keys == ["key:2"],
                "a length past 18 digits")
        #expect(look(Self.get + "*2\r\n$3\r\nGET\r\n$999999999999999999\r\nk\r\n").keys == ["key:2"],
                "a length past the buffer")
        #expect(look("").keys == [] && look("").end == 0)
    }

    @Test func fillsAtMostTheRoomGiven() {
        let text = String(repeating: Self.get, count: 40)
        let found = look(text, room: 16)
        #expect(found.keys.count == 16)
        #expect(found.end == 16 * Self.get.utf8.count, "the look ends after the last request whose key it kept")
    }
}
