import Foundation
import IdemEngine
@testable import IdemServer
import Testing

@Suite("Limits, back-pressure, restart, shutdown, metrics")
struct LifecycleTests {
    @Test("max clients: the next client is told and closed; others keep working")
    func maxClients() async throws {
        try await withServer(configure: { $0.maxClients = 2 }) { server in
            let first = try server.client(), second = try server.client()
            #expect(try first.call("PING") == .simple("PONG"))
            #expect(try second.call("PING") == .simple("PONG")) // both registered before the third arrives
            let third = try server.client()
            #expect(try third.read() == .error("ERR max number of clients reached"))
            #expect(third.isClosedByServer())
            #expect(try second.call("PING") == .simple("PONG"))
        }
    }

    @Test("an idle client is closed after the timeout")
    func idleTimeout() async throws {
        try await withServer(configure: { $0.idleTimeoutMilliseconds = 100 }) { server in
            let client = try server.client()
            #expect(try client.call("PING") == .simple("PONG"))
            #expect(client.isClosedByServer())
        }
    }

    @Test("50,000 pipelined commands sent without reading: all answered in order, others still served")
    func backPressure() async throws {
        try await withServer(configure: { $0.maxPendingCommands = 64 }) { server in
            let flooder = try server.client(), bystander = try server.client()
            _ = try flooder.call("SET", "k", "value")
            let one = RESPClient.encode([Array("GET".utf8), Array("k".utf8)])
            let batch = Array([[UInt8]](repeating: one, count: 10_000).joined())
            let sender = Thread {
                for _ in 0..<5 { try? flooder.send(batch) }
            }
            sender.start()
            #expect(try bystander.call("PING") == .simple("PONG"))
            for index in 0..<50_000 {
                let reply = try flooder.read()
                if reply != bulk("value") {
                    Issue.record("reply \(index): \(reply)")
                    return
                }
            }
        }
    }

    @Test("a client that never reads its replies is disconnected past the output limit")
    func slowReader() async throws {
        try await withServer(configure: { $0.maxOutputBufferBytes = 256 * 1024 }) { server in
            let client = try RESPClient(port: server.port, receiveBufferBytes: 16 * 1024)
            _ = try client.call("SET", "big", String(repeating: "x", count: 100_000))
            let one = RESPClient.encode([Array("GET".utf8), Array("big".utf8)])
            try? client.send(Array([[UInt8]](repeating: one, count: 200).joined()))
            // Not reading for a while: the server must give up on this client
            // instead of buffering 20 MB of replies for it.
            try await Task.sleep(for: .milliseconds(500))
            let received = client.readToEnd().utf8.count
            #expect(received < 200 * 100_000, "the server buffered every reply for a client that did not read")
            let stats = try server.client().call("INFO", "stats").string ?? ""
            #expect(stats.contains("total_connections_received:2"))
        }
    }

    @Test("a restart keeps every acknowledged key, string and record, with its TTL")
    func restart() async throws {
        try await withServer(durability: .always) { server in
            let client = try server.client()
            #expect(try client.call("SET", "dedup:1", "1", "NX", "EX", "86400") == ok)
            let begin = try client.call("IDEM.BEGIN", "order-9")
            _ = try client.call("IDEM.COMPLETE", "order-9", begin.items[1].string!, "receipt")
            try await server.restart()
            let again = try server.client()
            #expect(try again.call("GET", "dedup:1") == bulk("1"))
            #expect(try again.call("TTL", "dedup:1") == .integer(86400))
            #expect(try again.call("IDEM.BEGIN", "order-9") == .array([bulk("completed"), bulk("receipt")]))
            #expect(try again.call("SET", "dedup:1", "1", "NX", "EX", "86400") == nilBulk)
        }
    }

    @Test("shutdown answers every command already sent, then closes")
    func gracefulShutdown() async throws {
        let harness = try await ServerHarness(durability: .always)
        let client = try harness.client()
        var batch: [UInt8] = []
        for index in 0..<500 { batch += RESPClient.encode([Array("SET".utf8), Array("k\(index)".utf8), Array("v".utf8)]) }
        try client.send(batch)
        #expect(try client.read() == ok)
        try await harness.server!.shutdown()
        for index in 1..<500 {
            let reply = try client.read()
            if reply != ok { Issue.record("reply \(index): \(reply)"); break }
        }
        #expect(client.isClosedByServer())
        try await harness.start()
        #expect(try harness.client().call("DBSIZE") == .integer(500))
        try await harness.stop()
    }

    @Test("IDEM.BACKUP writes a copy that a server restores with every key")
    func backup() async throws {
        try await withServer(durability: .always) { server in
            let client = try server.client()
            for index in 0..<200 { _ = try client.call("SET", "k\(index)", "v\(index)", "EX", "3600") }
            let token = try client.call("IDEM.BEGIN", "order-1").items[1].string!
            _ = try client.call("IDEM.COMPLETE", "order-1", token, "receipt")
            let destination = server.directory + "-backup"
            let reply = try client.call("IDEM.BACKUP", destination)
            #expect(reply.items.first == bulk("tables_linked"), "\(reply)")
            #expect(try client.call("IDEM.BACKUP", destination).string?.hasPrefix("ERR I/O error") == true,
                    "a second backup into the same directory is refused")
            _ = try client.call("SET", "after", "1")

            let restored = try await ServerHarness(configure: { $0.directory = destination })
            let check = try restored.client()
            #expect(try check.call("DBSIZE") == .integer(201))
            #expect(try check.call("GET", "k123") == bulk("v123"))
            #expect(try check.call("TTL", "k123") == .integer(3600))
            #expect(try check.call("IDEM.BEGIN", "order-1") == .array([bulk("completed"), bulk("receipt")]))
            #expect(try check.call("GET", "after") == nilBulk)
            try await restored.stop()
        }
    }

    @Test("the port in use is a clear start-up error")
    func portInUse() async throws {
        try await withServer { server in
            var configuration = server.configuration
            configuration.port = server.port
            configuration.metricsPort = nil
            configuration.directory += "-second"
            await #expect(throws: ServerStartError.self) { _ = try await IdemServer.start(configuration: configuration) }
            try? FileManager.default.removeItem(atPath: configuration.directory)
        }
    }

    @Test("/metrics, /healthz and /readyz")
    func metricsEndpoint() async throws {
        try await withServer { server in
            let client = try server.client()
            _ = try client.call("SET", "k", "v")
            _ = try client.call("GET", "k")
            _ = try client.call("GET", "missing")
            _ = try client.call("IDEM.BEGIN", "m1")
            func get(_ path: String) throws -> String {
                let http = try RESPClient(port: server.server!.metricsPort!)
                try http.send("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return http.readToEnd()
            }
            // Connections land on different event loops; each loop counts
            // in its own shard, and the scrape adds them up.
            let others = try (0..<3).map { _ in try server.client() }
            for other in others { _ = try other.call("SET", "k", "w") }
            let metrics = try get("/metrics")
            #expect(metrics.hasPrefix("HTTP/1.1 200 OK"))
            #expect(metrics.contains(#"idem_commands_total{command="set",outcome="ok"} 4"#))
            #expect(metrics.contains(#"idem_command_duration_seconds_bucket{command="set",le="+Inf"} 4"#))
            #expect(metrics.contains("idem_keyspace_hits_total 1") && metrics.contains("idem_keyspace_misses_total 1"))
            #expect(metrics.contains("idem_idempotency_acquired_total 1"))
            #expect(metrics.contains(#"idem_command_duration_seconds_count{command="get"} 2"#))
            #expect(metrics.contains("idem_memtable_entries 2"))
            for timing in ["idem_flush_seconds ", "idem_compaction_seconds ", "idem_partition_drop_seconds "] {
                #expect(metrics.contains("\n" + timing), "missing \(timing)")
            }
            #expect(metrics.contains("idem_net_input_bytes_total ") && !metrics.contains("idem_net_input_bytes_total 0\n"))
            #expect(try get("/healthz").hasPrefix("HTTP/1.1 200 OK"))
            #expect(try get("/readyz").hasSuffix("ready\n"))
            #expect(try get("/nope").hasPrefix("HTTP/1.1 404"))
        }
    }
}
