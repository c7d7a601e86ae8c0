import Foundation
import IdemEngine
@testable import IdemServer
import Testing

/// Connections moving between event loops (`LoopAssignment`): clients see
/// nothing but exact replies, in order, while the server consolidates onto
/// one loop and spreads out again.
@Suite struct LoopMigrationTests {
    /// Waits (bounded) until the loops serve `expected` connections each.
    static func waitForDistribution(_ server: ServerHarness, _ expected: [Int]) async throws {
        for _ in 0..<1000 {
            if await server.server!.connectionsPerLoop() == expected { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(await server.server!.connectionsPerLoop() == expected)
    }

    @Test func consolidatesAndSpreadsIdleAndHalfSentClients() async throws {
        try await withServer { server in
            let clients = try (0..<6).map { _ in try server.client() }
            for (index, client) in clients.enumerated() {
                #expect(try client.call("CLIENT", "SETNAME", "c\(index)") == ok)
            }
            try await Self.waitForDistribution(server, [3, 3])
            // Half a command buffered when its connection moves.
            try clients[1].send("*3\r\n$3\r\nSET\r\n$4\r\nhalf")
            try await Task.sleep(for: .milliseconds(20))

            server.server!.useEventLoops(1)
            try await Self.waitForDistribution(server, [6, 0])
            try clients[1].send("\r\n$5\r\nvalue\r\n")
            #expect(try clients[1].read() == ok)
            for (index, client) in clients.enumerated() {
                #expect(try client.call("SET", "k\(index)", "v\(index)") == ok)
                #expect(try client.call("CLIENT", "GETNAME") == bulk("c\(index)"))
            }
            // New connections go to the active loop only.
            let late = try server.client()
            #expect(try late.call("GET", "half") == bulk("value"))
            try await Self.waitForDistribution(server, [7, 0])

            server.server!.useEventLoops(2)
            // Loop 0 gives half (rounded down) of its 7 to loop 1.
            try await Self.waitForDistribution(server, [4, 3])
            for (index, client) in clients.enumerated() {
                #expect(try client.call("GET", "k\(index)") == bulk("v\(index)"))
            }
            let list = try late.call("CLIENT", "LIST").string ?? ""
            #expect(list.split(separator: "\n").count == 7)
            for index in 0..<6 { #expect(list.contains("name=c\(index) ")) }
            let info = try late.call("INFO", "stats").string ?? ""
            #expect(info.contains("idem_io_threads_active:2\r\n") && info.contains("idem_connections_moved:6\r\n"))
        }
    }

    /// Pipelining writers under `always` (replies await group commits, so
    /// connections are often not movable) while the loop count flips; every
    /// reply must arrive, in order, with the exact value.
    @Test func movesPipeliningClientsWithoutLosingAReply() async throws {
        try await withServer(durability: .always) { server in
            let writers = 4
            let rounds = 60
            let depth = 16
            let clients = try (0..<writers).map { _ in try server.client() }
            let failures = LockedCounter()
            let finished = LockedCounter()
            for (index, client) in clients.enumerated() {
                Thread.detachNewThread {
                    defer { finished.add() }
                    do {
                        let key = Array("w\(index)".utf8)
                        var sequence = 0
                        for _ in 0..<rounds {
                            var batch: [UInt8] = []
                            for step in 1...depth {
                                batch += RESPClient.encode([Array("SET".utf8), key, Array("\(sequence + step)".utf8)])
                                batch += RESPClient.encode([Array("GET".utf8), key])
                            }
                            try client.send(batch)
                            for _ in 0..<depth {
                                sequence += 1
                                if try client.read() != ok { failures.add() }
                                if try client.read() != bulk("\(sequence)") { failures.add() }
                            }
                        }
                    } catch {
                        failures.add()
                    }
                }
            }
            // A thread of its own: blocking test clients elsewhere may
            // hold the cooperative pool's few threads.
            let flips = LockedCounter()
            let instance = server.server!
            Thread.detachNewThread {
                while finished.value < writers {
                    instance.useEventLoops(flips.value % 2 == 0 ? 1 : 2)
                    flips.add()
                    usleep(3000)
                }
                finished.add()
            }
            while finished.value <= writers { try await Task.sleep(for: .milliseconds(5)) }
            #expect(failures.value == 0)
            #expect(flips.value > 2)
            // Connections did move, busy as they were.
            #expect(server.server!.context.metrics.snapshot().connectionsMoved > writers)
            let check = try server.client()
            for index in 0..<writers {
                #expect(try check.call("GET", "w\(index)") == bulk("\(rounds * depth)"))
            }
        }
    }

    /// Shutdown reaches connections wherever they moved: every client is
    /// drained and the server stops within its drain timeout.
    @Test func shutdownDrainsMovedClients() async throws {
        let server = try await ServerHarness()
        let clients = try (0..<5).map { _ in try server.client() }
        for client in clients { #expect(try client.call("PING") == .simple("PONG")) }
        server.server!.useEventLoops(1)
        try await Self.waitForDistribution(server, [5, 0])
        server.server!.useEventLoops(2)
        let started = ContinuousClock.now
        try await server.stop()
        #expect(ContinuousClock.now - started < .seconds(5))
        for client in clients { #expect(client.isClosedByServer()) }
    }
}

/// A counter several threads add to.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
