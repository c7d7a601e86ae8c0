import CIdemPosix
import Glibc
import RESP

/// The client connections of one `ServerLoop`, and what the loop does for
/// all of them at the end of each iteration.
///
/// Invariants (all on the loop's thread):
/// - Writes under `everysec`/`never` reach the log in one append per
///   iteration: a connection that issued any sets `logWriteNeeded`, and the
///   append (`Engine.writeDeferredLog`) runs after every ready socket of the
///   iteration has been read and before any reply is written — replies go
///   out after their records are in the OS, as Redis writes its AOF before
///   its replies.
/// - A connection with output or a state change to act on is in `dirty`
///   exactly once (`ClientConnection.isDirty`); the end of the iteration
///   writes its output and resumes or closes it.
final class LoopConnections: LoopDelegate {
    let server: ServerContext
    let loop: ServerLoop
    let mailbox: LoopMailbox
    let metrics: MetricsShard
    /// Set on the loop that accepts (loop 0).
    var listener: TCPListener?
    // Loop thread only, hence exempt from exclusivity checks (see
    // `ClientConnection`).
    @exclusivity(unchecked) var logWriteNeeded = false
    @exclusivity(unchecked) private var dirty: [ClientConnection] = []
    @exclusivity(unchecked) private var spareDirty: [ClientConnection] = []
    private var connections: [ObjectIdentifier: ClientConnection] = [:]

    init(server: ServerContext, loop: ServerLoop) {
        self.server = server
        self.loop = loop
        self.mailbox = LoopMailbox(loop: loop)
        self.metrics = server.metrics.shard(for: loop)
    }

    /// Takes over an accepted socket.
    func adopt(_ descriptor: Int32) {
        _ = idem_set_no_delay(descriptor)
        let info = ClientInfo(id: server.clients.makeID(),
                              remoteAddress: SocketAddress.describe(descriptor, peer: true).text,
                              localAddress: SocketAddress.describe(descriptor, peer: false).text,
                              connectedAt: server.now)
        let connection = ClientConnection(descriptor: descriptor, info: info, owner: self)
        guard !server.draining.load(ordering: .relaxed),
              server.clients.register(info, handle: ClientHandle(connection, loop: loop)) else {
            server.metrics.countConnection(accepted: false)
            let refusal = Array("-ERR max number of clients reached\r\n".utf8)
            _ = refusal.withUnsafeBytes { idem_send(descriptor, $0.baseAddress, $0.count) }
            Glibc.close(descriptor)
            return
        }
        do {
            try loop.register(descriptor, events: UInt32(EPOLLIN.rawValue), source: connection)
        } catch {
            server.logger.warning("cannot watch a new connection", metadata: ["error": "\(error)"])
            server.clients.unregister(info.id)
            Glibc.close(descriptor)
            return
        }
        server.metrics.countConnection(accepted: true)
        connections[ObjectIdentifier(connection)] = connection
    }

    func closed(_ connection: ClientConnection) {
        connections[ObjectIdentifier(connection)] = nil
        server.clients.unregister(connection.session.info.id)
    }

    func markDirty(_ connection: ClientConnection) {
        guard !connection.isDirty else { return }
        connection.isDirty = true
        dirty.append(connection)
    }

    // MARK: LoopDelegate

    func iterationEnded(_ loop: ServerLoop) {
        // Flushing may resume a paused connection, which may parse more
        // commands and issue more writes: repeat until nothing is left.
        while logWriteNeeded || !dirty.isEmpty {
            if logWriteNeeded {
                logWriteNeeded = false
                server.engine.writeDeferredLog()
                // The other loop's log write may have taken this loop's
                // records first; their completions are then usually queued
                // here by now. Taking them in sends their replies in this
                // pass instead of in an iteration of their own.
                loop.runTasks()
            }
            swap(&dirty, &spareDirty)
            for connection in spareDirty {
                connection.isDirty = false
                connection.flushAndContinue()
            }
            spareDirty.removeAll(keepingCapacity: true)
        }
    }

    func tick(_ loop: ServerLoop, nowMilliseconds: Int64) {
        listener?.resume()
        let timeout = server.configuration.idleTimeoutMilliseconds
        for connection in connections.values {
            let idle = nowMilliseconds - connection.lastReadAt
            if timeout > 0 && idle >= timeout {
                server.logger.debug("closing idle client", metadata: ["client_id": "\(connection.session.info.id)"])
                connection.close()
            } else if idle >= 1000 {
                connection.releaseIdleBuffers()
            }
        }
    }

    func stopping(_ loop: ServerLoop) {
        listener?.close()
        for connection in Array(connections.values) { connection.close() }
    }
}

/// How the rest of the server reaches a connection on another thread
/// (shutdown drains and closes every client).
struct ClientHandle: Sendable {
    private let connection: LoopBound<ClientConnection>

    init(_ connection: ClientConnection, loop: ServerLoop) {
        self.connection = LoopBound(connection, loop: loop)
    }

    /// Finish the commands already read, send their replies, then close.
    func drain() {
        let connection = self.connection
        connection.loop.execute { connection.value.drain() }
    }

    func close() {
        let connection = self.connection
        connection.loop.execute { connection.value.close() }
    }
}
