import Foundation
import Idempotency
@testable import IdemServer
import Testing

@Suite("IDEM.* commands: every reply branch")
struct IdempotencyCommandTests {
    /// Begins `key` and returns the token.
    private func acquire(_ client: RESPClient, _ key: String, _ options: String...) throws -> String {
        let reply = try client.call(bytes: (["IDEM.BEGIN", key] + options).map { Array($0.utf8) })
        guard reply.items.first == bulk("acquired"), let token = reply.items[1].string else {
            throw RESPClient.ClientError.malformed("IDEM.BEGIN gave \(reply)")
        }
        return token
    }

    @Test("begin → in_progress → complete → replay; mismatch; invalid key")
    func lifecycle() async throws {
        try await withServer(durability: .always) { server in
            let client = try server.client()
            let first = try client.call("IDEM.BEGIN", "pay-1", "FP", "abc", "LEASE", "5000")
            #expect(first.items.count == 4 && first.items[0] == bulk("acquired") && first.items[2] == .integer(1) && first.items[3] == nilBulk)
            let token = first.items[1].string!
            #expect(token.count == 32)
            #expect(try client.call("IDEM.BEGIN", "pay-1", "FP", "abc") == .array([bulk("in_progress"), .integer(5000)]))
            server.clock.advance(byMilliseconds: 1200)
            #expect(try client.call("IDEM.BEGIN", "pay-1") == .array([bulk("in_progress"), .integer(3800)]))
            #expect(try client.call("IDEM.BEGIN", "pay-1", "FP", "xyz") == .error("MISMATCH the key was used with a different request fingerprint"))
            #expect(try client.call("IDEM.COMPLETE", "pay-1", token, "{\"status\":201}") == ok)
            #expect(try client.call("IDEM.COMPLETE", "pay-1", token, "{\"status\":201}") == ok) // idempotent for the owner
            #expect(try client.call("IDEM.BEGIN", "pay-1", "FP", "abc") == .array([bulk("completed"), bulk("{\"status\":201}")]))
            #expect(try client.call("IDEM.BEGIN", "bad key") == .error("ERR invalid idempotency key: byte 0x20 at offset 3 is not printable ASCII"))
            #expect(try client.call("IDEM.BEGIN", String(repeating: "k", count: 256)).string?.hasPrefix("ERR invalid idempotency key: 256 bytes") == true)
            #expect(try client.call("IDEM.BEGIN", "k", "LEASE", "0") == .error("ERR lease must be between 1 ms and 1 day, got 0 ms"))
            #expect(try client.call("IDEM.BEGIN", "k", "LEASE", "x") == .error("ERR value is not an integer or out of range"))
            #expect(try client.call("IDEM.BEGIN", "k", "COLOR", "red") == .error("ERR syntax error"))
        }
    }

    @Test("a lapsed lease is taken over: attempt 2, the recovery point, the old token fenced")
    func takeover() async throws {
        try await withServer { server in
            let client = try server.client()
            let old = try acquire(client, "job-7", "LEASE", "1000")
            #expect(try client.call("IDEM.CHECKPOINT", "job-7", old, "step-3") == ok)
            #expect(try client.call("IDEM.EXTEND", "job-7", old, "2000") == ok)
            server.clock.advance(byMilliseconds: 2000)
            let takeover = try client.call("IDEM.BEGIN", "job-7")
            #expect(takeover.items[0] == bulk("acquired") && takeover.items[2] == .integer(2) && takeover.items[3] == bulk("step-3"))
            let new = takeover.items[1].string!
            let leaseLost = Reply.error("LEASELOST the token does not own the current attempt on this key")
            #expect(try client.call("IDEM.COMPLETE", "job-7", old, "late") == leaseLost)
            #expect(try client.call("IDEM.EXTEND", "job-7", old, "1000") == leaseLost)
            #expect(try client.call("IDEM.CHECKPOINT", "job-7", old, "x") == leaseLost)
            #expect(try client.call("IDEM.ABORT", "job-7", old) == leaseLost)
            #expect(try client.call("IDEM.COMPLETE", "job-7", new, "done", "TTL", "60000") == ok)
            #expect(try client.call("PTTL", "job-7") == .integer(60000))
            #expect(try client.call("IDEM.COMPLETE", "nope", new, "x") == .error("NOTFOUND no idempotency record for this key (never begun, forgotten or expired)"))
            #expect(try client.call("IDEM.COMPLETE", "job-7", "not-hex", "x") == .error("ERR invalid token: expected the 32 hex digits IDEM.BEGIN returned"))
        }
    }

    @Test("abort deletes or, with KEEP, releases the lease; forget needs FORCE while in progress")
    func abortAndForget() async throws {
        try await withServer { server in
            let client = try server.client()
            let token = try acquire(client, "a1")
            #expect(try client.call("IDEM.ABORT", "a1", token) == ok)
            #expect(try client.call("IDEM.GET", "a1") == nilBulk)
            let again = try acquire(client, "a1")
            #expect(try client.call("IDEM.CHECKPOINT", "a1", again, "half") == ok)
            #expect(try client.call("IDEM.ABORT", "a1", again, "KEEP") == ok)
            let resumed = try client.call("IDEM.BEGIN", "a1")
            #expect(resumed.items[0] == bulk("acquired") && resumed.items[2] == .integer(2) && resumed.items[3] == bulk("half"))
            #expect(try client.call("IDEM.FORGET", "a1") == .error("BUSY the key's attempt is in progress; IDEM.FORGET key FORCE forgets it anyway"))
            #expect(try client.call("IDEM.FORGET", "a1", "FORCE") == .integer(1))
            #expect(try client.call("IDEM.FORGET", "a1") == .integer(0))
            let done = try acquire(client, "a2")
            _ = try client.call("IDEM.COMPLETE", "a2", done, "r")
            #expect(try client.call("IDEM.FORGET", "a2") == .integer(1))
            #expect(try client.call("IDEM.ABORT", "a2", done, "SOFTLY") == .error("ERR syntax error"))
        }
    }

    @Test("IDEM.GET: flat pairs in RESP2, a map in RESP3")
    func get() async throws {
        try await withServer { server in
            let client = try server.client()
            let token = try acquire(client, "g1", "FP", "f", "LEASE", "4000", "TTL", "90000")
            server.clock.advance(byMilliseconds: 1000)
            let expected: [Reply] = [bulk("state"), bulk("in_progress"), bulk("fingerprint"), bulk("f"),
                                     bulk("attempt"), .integer(1), bulk("lease_ms"), .integer(3000),
                                     bulk("ttl_ms"), .integer(89000), bulk("recovery_point"), nilBulk,
                                     bulk("response"), nilBulk]
            #expect(try client.call("IDEM.GET", "g1") == .array(expected))
            _ = try client.call("IDEM.COMPLETE", "g1", token, "resp", "TTL", "5000")
            let resp3 = try server.client(protocolVersion: .resp3)
            let map = try resp3.call("IDEM.GET", "g1")
            #expect(map == .map([bulk("state"), bulk("completed"), bulk("fingerprint"), bulk("f"),
                                 bulk("attempt"), .integer(1), bulk("lease_ms"), .integer(-1),
                                 bulk("ttl_ms"), .integer(5000), bulk("recovery_point"), .null,
                                 bulk("response"), bulk("resp")]))
            #expect(try resp3.call("IDEM.GET", "none") == .null)
            server.clock.advance(byMilliseconds: 5000)
            #expect(try client.call("IDEM.GET", "g1") == nilBulk)
        }
    }

    @Test("strings and records are different types: crossing them is WRONGTYPE")
    func wrongType() async throws {
        try await withServer { server in
            let client = try server.client()
            let wrongType = Reply.error("WRONGTYPE Operation against a key holding the wrong kind of value")
            _ = try client.call("SET", "plain", "v")
            let token = try acquire(client, "record")
            #expect(try client.call("IDEM.BEGIN", "plain") == wrongType)
            #expect(try client.call("IDEM.GET", "plain") == wrongType)
            #expect(try client.call("IDEM.COMPLETE", "plain", token, "x") == wrongType)
            #expect(try client.call("GET", "record") == wrongType)
            #expect(try client.call("SET", "record", "v") == wrongType)
            #expect(try client.call("GETDEL", "record") == wrongType)
            #expect(try client.call("EXPIRE", "record", "10") == wrongType)
            #expect(try client.call("MGET", "plain", "record") == .array([bulk("v"), nilBulk]))
            #expect(try client.call("TYPE", "record") == .simple("idempotency"))
            #expect(try client.call("DEL", "record") == .integer(1))
        }
    }

    @Test("IDEM.KEYGEN and IDEM.VERIFY")
    func keygen() async throws {
        let secret = Array(repeating: UInt8(7), count: 32)
        try await withServer(configure: { $0.keyGenerator = try? KeyGenerator(secret: secret) }) { server in
            let client = try server.client()
            let uuid7 = try client.call("IDEM.KEYGEN").string ?? ""
            #expect(uuid7.count == 36 && Array(uuid7)[14] == "7")
            #expect(Array(try client.call("IDEM.KEYGEN", "UUID4").string ?? "")[14] == "4")
            let hybrid = try client.call("IDEM.KEYGEN", "HYBRID", "ord").string ?? ""
            #expect(hybrid.hasPrefix("ord."))
            #expect(try client.call("IDEM.VERIFY", hybrid) == .integer(1))
            #expect(try client.call("IDEM.VERIFY", hybrid + "x") == .integer(0))
            #expect(try client.call("IDEM.KEYGEN", "UUID9") == .error("ERR syntax error"))
        }
        try await withServer { server in
            let client = try server.client()
            #expect(try client.call("IDEM.VERIFY", "x") == .error("ERR HYBRID keys need a key secret: start the server with --key-secret-file or IDEM_KEY_SECRET"))
        }
    }
}
