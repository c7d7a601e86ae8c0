import Foundation
import IdemEngine
@testable import IdemServer
import Testing

/// The server over a fault-injecting file system: what clients see when the
/// disk fills up or an fsync fails.
@Suite("Disk faults as clients see them")
struct ServerFaultTests {
    private func harness(_ fileSystem: SimulatedFileSystem, durability: Durability) async throws -> ServerHarness {
        try await ServerHarness(durability: durability) { configuration in
            configuration.directory = "/data"
            configuration.engine.fileSystem = fileSystem
        }
    }

    @Test("ENOSPC: the write fails with a clear error, reads keep working, writes resume, nothing acknowledged is lost")
    func diskFull() async throws {
        let fileSystem = SimulatedFileSystem()
        let server = try await harness(fileSystem, durability: .always)
        let client = try server.client()
        #expect(try client.call("SET", "before", "1") == ok)
        fileSystem.injectWriteFailure(code: ErrorNumber.noSpace, pathContains: "wal-", times: 1)
        let refused = try client.call("SET", "during", "2")
        #expect(refused.string?.hasPrefix("ERR no space left on device") == true, "\(refused)")
        #expect(try client.call("GET", "before") == bulk("1"))
        #expect(try client.call("GET", "during") == nilBulk)
        #expect(try client.call("SET", "after", "3") == ok)
        try await server.restart()
        let again = try server.client()
        #expect(try again.call("MGET", "before", "during", "after") == .array([bulk("1"), nilBulk, bulk("3")]))
        try await server.server?.shutdown()
    }

    @Test("EIO on fsync: fail-stop — writes refused for good, reads served, /readyz and metrics say so")
    func fsyncFailure() async throws {
        let fileSystem = SimulatedFileSystem()
        let server = try await harness(fileSystem, durability: .always)
        let client = try server.client()
        #expect(try client.call("SET", "kept", "1") == ok)
        fileSystem.injectSyncFailure(code: ErrorNumber.io, times: 1)
        #expect(try client.call("SET", "lost", "2").string?.hasPrefix("ERR") == true)
        let later = try client.call("SET", "later", "3")
        #expect(later.string?.hasPrefix("ERR engine is read-only") == true, "\(later)")
        #expect(try client.call("IDEM.BEGIN", "op").string?.hasPrefix("ERR engine is read-only") == true)
        #expect(try client.call("GET", "kept") == bulk("1"))

        func get(_ path: String) throws -> String {
            let http = try RESPClient(port: server.server!.metricsPort!)
            try http.send("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return http.readToEnd()
        }
        let ready = try get("/readyz")
        #expect(ready.hasPrefix("HTTP/1.1 503") && ready.contains("read-only"))
        let metrics = try get("/metrics")
        #expect(metrics.contains("idem_read_only 1"))
        #expect(metrics.contains("idem_write_failures_total"))
        #expect(try get("/healthz").hasPrefix("HTTP/1.1 200"))
        try? await server.server?.shutdown()
    }
}
