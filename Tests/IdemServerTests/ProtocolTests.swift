import Foundation
@testable import IdemServer
import Synchronization
import Testing

@Suite("Protocol: framing, pipelining, errors")
struct ProtocolTests {
    @Test("inline commands with Redis's quoting, typed as over nc")
    func inlineCommands() async throws {
        try await withServer { server in
            let client = try server.client()
            try client.send("PING\r\nSET \"a b\" \"x\\ty\"\r\nGET 'a b'\nECHO \"\\x41\\x42\"\r\n")
            #expect(try client.read() == .simple("PONG"))
            #expect(try client.read() == ok)
            #expect(try client.read() == bulk("x\ty"))
            #expect(try client.read() == bulk("AB"))
            try client.send("\r\n\r\nPING hello\r\n")
            #expect(try client.read() == bulk("hello"))
        }
    }

    @Test("10,000 pipelined commands in one write come back in order, writes and reads interleaved")
    func pipelining() async throws {
        try await withServer(durability: .always) { server in
            let client = try server.client()
            var request: [UInt8] = []
            for index in 0..<5_000 {
                request += RESPClient.encode([Array("SET".utf8), Array("k\(index % 100)".utf8), Array("v\(index)".utf8)])
                request += RESPClient.encode([Array("GET".utf8), Array("k\(index % 100)".utf8)])
            }
            try client.send(request)
            for index in 0..<5_000 {
                #expect(try client.read() == ok)
                let value = try client.read()
                if value != bulk("v\(index)") {
                    Issue.record("reply \(index): \(value)")
                    return
                }
            }
            #expect(try client.call("DBSIZE") == .integer(100))
        }
    }

    @Test("protocol errors get Redis's text and the connection is closed", arguments: [
        ("*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        ("*1\r\n+PING\r\n", "ERR Protocol error: expected '$', got '+'"),
        ("*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
        ("*1\r\n$99999999999\r\n", "ERR Protocol error: invalid bulk length"),
        ("SET \"unterminated\r\n", "ERR Protocol error: unbalanced quotes in request"),
        ("*2000000\r\n", "ERR Protocol error: invalid multibulk length"),
    ])
    func protocolErrors(input: String, expected: String) async throws {
        try await withServer { server in
            let client = try server.client()
            #expect(try client.call("PING") == .simple("PONG"))
            try client.send(input)
            #expect(try client.read() == .error(expected))
            #expect(client.isClosedByServer())
            // The server keeps serving others.
            #expect(try server.client().call("PING") == .simple("PONG"))
        }
    }

    @Test("an inline line or header past the limit is refused and closed")
    func oversizedLines() async throws {
        try await withServer(configure: { $0.maxInlineLength = 1024; $0.maxBulkLength = 4096 }) { server in
            let inline = try server.client()
            try inline.send(String(repeating: "a", count: 2000))
            #expect(try inline.read() == .error("ERR Protocol error: too big inline request"))
            #expect(inline.isClosedByServer())

            let big = try server.client()
            try big.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n")
            #expect(try big.read() == .error("ERR Protocol error: invalid bulk length"))
            #expect(big.isClosedByServer())
        }
    }

    @Test("unknown commands and wrong arity are errors; the connection stays usable")
    func unknownAndArity() async throws {
        try await withServer { server in
            let client = try server.client()
            #expect(try client.call("NOSUCH", "a", "b") == .error("ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "))
            #expect(try client.call("GET") == .error("ERR wrong number of arguments for 'get' command"))
            #expect(try client.call("get", "a", "b") == .error("ERR wrong number of arguments for 'get' command"))
            #expect(try client.call("PING", "a", "b") == .error("ERR wrong number of arguments for 'ping' command"))
            #expect(try client.call("CLIENT", "SETNAME") == .error("ERR wrong number of arguments for 'client|setname' command"))
            #expect(try client.call("CLIENT", "FOO") == .error("ERR unknown subcommand 'FOO'. Try CLIENT HELP."))
            #expect(try client.call("PING") == .simple("PONG"))
        }
    }

    @Test("HELLO 3 switches to RESP3: maps, nulls, and back with HELLO 2")
    func resp3() async throws {
        try await withServer { server in
            let client = try server.client()
            let hello = try client.call("HELLO", "3")
            guard case .map(let fields) = hello else { Issue.record("HELLO 3 gave \(hello)"); return }
            #expect(fields[0] == bulk("server") && fields[1] == bulk("redis"))
            #expect(fields.contains(bulk("proto")) && fields[fields.firstIndex(of: bulk("proto"))! + 1] == .integer(3))
            #expect(try client.call("GET", "missing") == .null)
            #expect(try client.call("HELLO", "4") == .error("NOPROTO unsupported protocol version"))
            #expect(try client.call("HELLO", "x") == .error("ERR Protocol version is not an integer or out of range"))
            guard case .array = try client.call("HELLO", "2") else { Issue.record("HELLO 2 is not an array"); return }
            #expect(try client.call("GET", "missing") == nilBulk)
        }
    }

    @Test("connection commands: SELECT, ECHO, CLIENT, QUIT, COMMAND, CONFIG GET, TIME")
    func connectionCommands() async throws {
        try await withServer { server in
            let client = try server.client()
            #expect(try client.call("SELECT", "0") == ok)
            #expect(try client.call("SELECT", "1") == .error("ERR DB index is out of range"))
            #expect(try client.call("SELECT", "x") == .error("ERR value is not an integer or out of range"))
            #expect(try client.call("CLIENT", "GETNAME") == nilBulk)
            #expect(try client.call("CLIENT", "SETNAME", "worker-1") == ok)
            #expect(try client.call("CLIENT", "SETNAME", "bad name") == .error("ERR Client names cannot contain spaces, newlines or special characters."))
            #expect(try client.call("CLIENT", "GETNAME") == bulk("worker-1"))
            #expect(try client.call("CLIENT", "SETINFO", "LIB-NAME", "redis-py") == ok)
            #expect(try client.call("CLIENT", "SETINFO", "color", "x") == .error("ERR Unrecognized option 'color'"))
            guard case .integer(let id) = try client.call("CLIENT", "ID") else { Issue.record("CLIENT ID"); return }
            let list = try client.call("CLIENT", "LIST").string ?? ""
            #expect(list.contains("id=\(id) ") && list.contains("name=worker-1") && list.contains("lib-name=redis-py"))
            #expect(try client.call("CONFIG", "GET", "save") == .array([bulk("save"), bulk("")]))
            #expect(try client.call("CONFIG", "GET", "appendonly") == .array([bulk("appendonly"), bulk("yes")]))
            #expect(try client.call("CONFIG", "GET", "max*").items.count == 4)
            guard case .integer(let count) = try client.call("COMMAND", "COUNT") else { Issue.record("COMMAND COUNT"); return }
            #expect(count >= 40)
            let info = try client.call("COMMAND", "INFO", "get", "nosuch")
            #expect(info.items.count == 2 && info.items[0].items.first == bulk("get") && info.items[1] == nilBulk)
            #expect(try client.call("TIME").items.count == 2)
            #expect(try client.call("CLIENT", "INFO").string?.contains("id=\(id) ") == true)
            let docs = try client.call("COMMAND", "DOCS", "set").items
            #expect(docs.first == bulk("set") && docs.count == 2)
            #expect(try client.call("CONFIG", "SET", "maxclients", "5").string?.hasPrefix("ERR Unknown option or number of arguments for CONFIG SET - 'maxclients'") == true)
            #expect(try client.call("COMMAND", "LIST").items.contains(bulk("idem.begin")))
            #expect(try client.call("QUIT") == ok)
            #expect(client.isClosedByServer())
        }
    }

    @Test("INFO has every section clients read, and the idem section; key counts only when asked")
    func info() async throws {
        try await withServer { server in
            let client = try server.client()
            _ = try client.call("SET", "a", "1")
            let text = try client.call("INFO").string ?? ""
            for section in ["# Server", "# Clients", "# Memory", "# Persistence", "# Stats", "# Idem"] {
                #expect(text.contains(section + "\r\n"), "missing \(section)")
            }
            #expect(text.contains("redis_version:7.2.0\r\n"))
            // The key counts cost a pass over every key: only when asked.
            #expect(!text.contains("# Keyspace"))
            let keyspaceOnly = try client.call("INFO", "keyspace").string ?? ""
            #expect(!keyspaceOnly.contains("# Server") && keyspaceOnly.contains("# Keyspace"))
            #expect(keyspaceOnly.contains("db0:keys=1,expires=0,avg_ttl=0\r\n"))
            let all = try client.call("INFO", "all").string ?? ""
            #expect(all.contains("# Server") && all.contains("db0:keys=1,expires=0,avg_ttl=0\r\n"))
            // No allocator reported (an embedder's libc): no allocator_* figures to show.
            let memory = try client.call("INFO", "memory").string ?? ""
            #expect(memory.contains("mem_allocator:libc\r\n") && !memory.contains("allocator_allocated"))
            #expect(try client.call("CONFIG", "GET", "jemalloc-bg-thread") == .array([bulk("jemalloc-bg-thread"), bulk("no")]))
            // Maintenance counts and the time it took.
            try await server.server!.engine.flush()
            let idem = try client.call("INFO", "idem").string ?? ""
            let fields = Dictionary(idem.split(separator: "\r\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: ":", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }, uniquingKeysWith: { first, _ in first })
            #expect(fields["flushes"] == "1" && fields["compactions"] == "0")
            #expect(fields["flush_seconds"].flatMap(Double.init).map { $0 > 0 } == true, "a flush takes time: \(idem)")
            for timing in ["compaction_seconds", "partition_drop_seconds"] {
                #expect(fields[timing].flatMap(Double.init).map { $0 >= 0 } == true, "\(timing) in \(idem)")
            }
            // The engine's own report of its maintenance thread's priority.
            let priority = server.server!.engine.statistics.maintenancePriority
            #expect(fields["maintenance_priority"] == priority.rawValue && fields["maintenance_boosts"] == "0")
        }
    }

    @Test("INFO memory and CONFIG GET show the allocator the executable reports, read fresh for each INFO")
    func allocatorReport() async throws {
        let calls = Mutex(0)
        let report = AllocatorReport(name: "jemalloc-5.3.0", backgroundPurge: true) {
            let call = calls.withLock { $0 += 1; return $0 }
            return .init(allocated: 1000 * call, active: 2000 * call, resident: 3000 * call)
        }
        try await withServer(configure: { $0.allocator = report }) { server in
            let client = try server.client()
            let first = try client.call("INFO", "memory").string ?? ""
            #expect(first.contains("mem_allocator:jemalloc-5.3.0\r\n"))
            #expect(first.contains("allocator_allocated:1000\r\nallocator_active:2000\r\nallocator_resident:3000\r\n"))
            let second = try client.call("INFO", "memory").string ?? ""
            #expect(second.contains("allocator_allocated:2000\r\n"))
            #expect(try client.call("CONFIG", "GET", "jemalloc-bg-thread") == .array([bulk("jemalloc-bg-thread"), bulk("yes")]))
        }
    }
}
