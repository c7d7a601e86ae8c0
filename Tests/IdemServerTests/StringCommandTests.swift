import Foundation
@testable import IdemServer
import Testing

@Suite("Redis string and key commands")
struct StringCommandTests {
    @Test("SET with NX / XX / GET / KEEPTTL and every expiry form")
    func setOptions() async throws {
        try await withServer { server in
            let client = try server.client()
            let now = server.clock.nowMilliseconds()
            #expect(try client.call("SET", "k", "v1", "NX", "EX", "100") == ok)
            #expect(try client.call("SET", "k", "v2", "NX") == nilBulk)
            #expect(try client.call("SET", "k", "v2", "NX", "GET") == bulk("v1"))
            #expect(try client.call("SET", "k", "v3", "XX", "GET") == bulk("v1"))
            #expect(try client.call("TTL", "k") == .integer(-1))
            #expect(try client.call("SET", "missing", "v", "XX") == nilBulk)
            #expect(try client.call("EXISTS", "missing") == .integer(0))
            #expect(try client.call("SET", "k", "v4", "PX", "1500") == ok)
            #expect(try client.call("PTTL", "k") == .integer(1500))
            #expect(try client.call("TTL", "k") == .integer(2)) // 1.5 s rounds to 2, as in Redis
            #expect(try client.call("SET", "k", "v5", "KEEPTTL") == ok)
            #expect(try client.call("PTTL", "k") == .integer(1500))
            #expect(try client.call("SET", "k", "v6", "EXAT", String(now / 1000 + 50)) == ok)
            #expect(try client.call("EXPIRETIME", "k") == .integer(now / 1000 + 50))
            #expect(try client.call("SET", "k", "v7", "PXAT", String(now + 7000)) == ok)
            #expect(try client.call("PEXPIRETIME", "k") == .integer(now + 7000))
            server.clock.advance(byMilliseconds: 7000)
            #expect(try client.call("GET", "k") == nilBulk)
            #expect(try client.call("TTL", "k") == .integer(-2))
        }
    }

    @Test("SET errors use Redis's words", arguments: [
        (["SET", "k", "v", "NX", "XX"], "ERR syntax error"),
        (["SET", "k", "v", "EX", "10", "PX", "10"], "ERR syntax error"),
        (["SET", "k", "v", "EX"], "ERR syntax error"),
        (["SET", "k", "v", "BOGUS"], "ERR syntax error"),
        (["SET", "k", "v", "EX", "ten"], "ERR value is not an integer or out of range"),
        (["SET", "k", "v", "EX", "0"], "ERR invalid expire time in 'set' command"),
        (["SET", "k", "v", "PX", "-5"], "ERR invalid expire time in 'set' command"),
        (["SET", "k", "v", "EX", "9223372036854775807"], "ERR invalid expire time in 'set' command"),
        (["SETEX", "k", "0", "v"], "ERR invalid expire time in 'setex' command"),
        (["PSETEX", "k", "x", "v"], "ERR value is not an integer or out of range"),
    ])
    func setErrors(arguments: [String], expected: String) async throws {
        try await withServer { server in
            let client = try server.client()
            #expect(try client.call(bytes: arguments.map { Array($0.utf8) }) == .error(expected))
            #expect(try client.call("EXISTS", "k") == .integer(0))
        }
    }

    @Test("SETNX, SETEX, PSETEX, GETDEL, MGET, DEL counts, EXISTS counts repeats, TYPE")
    func variants() async throws {
        try await withServer(durability: .always) { server in
            let client = try server.client()
            #expect(try client.call("SETNX", "a", "1") == .integer(1))
            #expect(try client.call("SETNX", "a", "2") == .integer(0))
            #expect(try client.call("SETEX", "b", "10", "2") == ok)
            #expect(try client.call("TTL", "b") == .integer(10))
            #expect(try client.call("PSETEX", "c", "2500", "3") == ok)
            #expect(try client.call("PTTL", "c") == .integer(2500))
            #expect(try client.call("MGET", "a", "nope", "b") == .array([bulk("1"), nilBulk, bulk("2")]))
            #expect(try client.call("EXISTS", "a", "a", "nope") == .integer(2))
            #expect(try client.call("TYPE", "a") == .simple("string"))
            #expect(try client.call("TYPE", "nope") == .simple("none"))
            #expect(try client.call("GETDEL", "c") == bulk("3"))
            #expect(try client.call("GETDEL", "c") == nilBulk)
            #expect(try client.call("DEL", "a", "b", "nope") == .integer(2))
            #expect(try client.call("UNLINK", "a") == .integer(0))
            #expect(try client.call("DBSIZE") == .integer(0))
        }
    }

    @Test("EXPIRE family with NX / XX / GT / LT, past deadlines delete, PERSIST")
    func expire() async throws {
        try await withServer { server in
            let client = try server.client()
            let now = server.clock.nowMilliseconds()
            _ = try client.call("SET", "k", "v")
            #expect(try client.call("EXPIRE", "missing", "10") == .integer(0))
            #expect(try client.call("EXPIRE", "k", "10", "XX") == .integer(0))
            #expect(try client.call("EXPIRE", "k", "10", "GT") == .integer(0)) // no TTL counts as infinite
            #expect(try client.call("EXPIRE", "k", "10", "NX") == .integer(1))
            #expect(try client.call("EXPIRE", "k", "20", "NX") == .integer(0))
            #expect(try client.call("EXPIRE", "k", "5", "GT") == .integer(0))
            #expect(try client.call("EXPIRE", "k", "20", "GT") == .integer(1))
            #expect(try client.call("PEXPIRE", "k", "30000", "LT") == .integer(0))
            #expect(try client.call("PEXPIRE", "k", "1000", "LT") == .integer(1))
            #expect(try client.call("PTTL", "k") == .integer(1000))
            #expect(try client.call("EXPIREAT", "k", String(now / 1000 + 100)) == .integer(1))
            #expect(try client.call("PEXPIREAT", "k", String(now + 5000)) == .integer(1))
            #expect(try client.call("PTTL", "k") == .integer(5000))
            #expect(try client.call("PERSIST", "k") == .integer(1))
            #expect(try client.call("PERSIST", "k") == .integer(0))
            #expect(try client.call("TTL", "k") == .integer(-1))
            #expect(try client.call("EXPIRE", "k", "10", "NX", "XX") == .error("ERR NX and XX, GT or LT options at the same time are not compatible"))
            #expect(try client.call("EXPIRE", "k", "10", "GT", "LT") == .error("ERR GT and LT options at the same time are not compatible"))
            #expect(try client.call("EXPIRE", "k", "10", "SOON") == .error("ERR Unsupported option SOON"))
            #expect(try client.call("EXPIRE", "k", "9223372036854775807") == .error("ERR invalid expire time in 'expire' command"))
            #expect(try client.call("EXPIRE", "k", "-1") == .integer(1)) // a past deadline deletes
            #expect(try client.call("EXISTS", "k") == .integer(0))
        }
    }

    @Test("SCAN walks every key once with COUNT, MATCH and TYPE; cursors are integers")
    func scan() async throws {
        try await withServer { server in
            let client = try server.client()
            for index in 0..<250 { _ = try client.call("SET", "user:\(index)", "x") }
            _ = try client.call("IDEM.BEGIN", "order-1")
            var seen: [String] = []
            var cursor = "0"
            repeat {
                let reply = try client.call("SCAN", cursor, "COUNT", "40")
                cursor = reply.items[0].string!
                #expect(UInt64(cursor) != nil)
                seen += reply.items[1].items.compactMap(\.string)
            } while cursor != "0"
            #expect(seen.count == 251 && Set(seen).count == 251)

            let matched = try client.call("SCAN", "0", "MATCH", "user:1?", "COUNT", "1000")
            #expect(Set(matched.items[1].items.compactMap(\.string)) == Set((10...19).map { "user:\($0)" }))
            let records = try client.call("SCAN", "0", "TYPE", "idempotency", "COUNT", "1000")
            #expect(records.items[1] == .array([bulk("order-1")]))
            #expect(try client.call("SCAN", "12345") == .error("ERR invalid cursor"))
            #expect(try client.call("SCAN", "abc") == .error("ERR invalid cursor"))
            #expect(try client.call("SCAN", "0", "COUNT", "0") == .error("ERR syntax error"))
            #expect(try client.call("DBSIZE") == .integer(251))
            #expect(try client.call("FLUSHDB") == ok)
            #expect(try client.call("DBSIZE") == .integer(0))
        }
    }

    @Test("glob patterns: classes, ranges, negation, escapes, many stars")
    func glob() {
        func matches(_ pattern: String, _ text: String) -> Bool { GlobPattern(Array(pattern.utf8)).matches(Array(text.utf8)) }
        #expect(matches("h?llo", "hello") && matches("h*llo", "heeeello") && matches("h[ae]llo", "hallo"))
        #expect(!matches("h[^e]llo", "hello") && matches("h[^e]llo", "hallo") && matches("h[a-b]llo", "hbllo"))
        #expect(matches("a\\*b", "a*b") && !matches("a\\*b", "axb"))
        #expect(matches("*", "") && !matches("?", "") && matches("*a*b*c*", "xxaxxbxxcxx"))
        let hostile = String(repeating: "*a", count: 30) + "b"
        #expect(!matches(hostile, String(repeating: "a", count: 5000)))
    }
}
