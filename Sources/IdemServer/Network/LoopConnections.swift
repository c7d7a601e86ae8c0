import CIdemPosix
import Glibc
import RESP
import Synchronization

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
    private var connections: [ObjectIdentifier: Client] = [:]
    /// Connections still to hand to other loops (`moveConnections`).
    private var pendingMove: PendingMove?
    /// Idle connections are looked at this often, whatever the tick.
    private let idleScanMilliseconds: Int64
    private var nextIdleScan: Int64 = 0
    /// Loop 0's: which loops serve, and the next connection's loop.
    var assignment: LoopAssignment?

    /// The registry's handle is kept beside the connection so a move can
    /// redirect it (the handle holds the connection, never the reverse).
    private struct Client {
        let connection: ClientConnection
        let handle: ClientHandle
    }

    /// What a loop is asked to give away: a share of its connections (to
    /// spread the load over more loops) or all of them (its loop retires).
    enum MoveShare: Equatable {
        case fraction(numerator: Int, denominator: Int)
        case all
    }

    private struct PendingMove {
        var remaining: Int
        let targets: [LoopBound<LoopConnections>]
        var next = 0
        /// Connections busy for longer than this stay (the next decision
        /// will ask again if it still matters).
        let giveUpAt: Int64
    }

    init(server: ServerContext, loop: ServerLoop, idleScanMilliseconds: Int64) {
        self.server = server
        self.loop = loop
        self.mailbox = LoopMailbox(loop: loop)
        self.metrics = server.metrics.shard(for: loop)
        self.idleScanMilliseconds = idleScanMilliseconds
    }

    var connectionCount: Int { connections.count }

    /// Takes over an accepted socket.
    func adopt(_ descriptor: Int32) {
        _ = idem_set_no_delay(descriptor)
        let info = ClientInfo(id: server.clients.makeID(),
                              remoteAddress: SocketAddress.describe(descriptor, peer: true).text,
                              localAddress: SocketAddress.describe(descriptor, peer: false).text,
                              connectedAt: server.now)
        let connection = ClientConnection(descriptor: descriptor, info: info, owner: self)
        let handle = ClientHandle(connection, loop: loop)
        guard !server.draining.load(ordering: .relaxed), server.clients.register(info, handle: handle) else {
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
        connections[ObjectIdentifier(connection)] = Client(connection: connection, handle: handle)
    }

    // MARK: Moving connections between loops

    /// Hands `share` of this loop's connections to `targets`, in turn, each
    /// as soon as nothing of it is tied to this loop (`canMove`): at the
    /// end of this iteration for most, later for one awaiting a reply.
    /// Replaces a move still pending.
    func moveConnections(_ share: MoveShare, to targets: [LoopBound<LoopConnections>]) {
        let count = switch share {
        case .all: connections.count
        case .fraction(let numerator, let denominator): connections.count * numerator / max(1, denominator)
        }
        let others = targets.filter { $0.loop !== loop }
        pendingMove = count > 0 && !others.isEmpty
            ? PendingMove(remaining: count, targets: others, giveUpAt: loop.nowMilliseconds + 1000) : nil
    }

    private func continueMoving() {
        guard var move = pendingMove else { return }
        let movable = connections.values.lazy.filter { $0.connection.canMove }.prefix(move.remaining)
        for client in Array(movable) {
            let target = move.targets[move.next % move.targets.count]
            move.next += 1
            move.remaining -= 1
            client.connection.detach()
            connections[ObjectIdentifier(client.connection)] = nil
            client.handle.move(to: target.loop)
            let moved = LoopBound(client.connection, loop: target.loop)
            let handle = client.handle
            target.loop.execute { target.value.adoptMoved(moved, handle: handle) }
        }
        pendingMove = move.remaining > 0 && loop.nowMilliseconds < move.giveUpAt ? move : nil
    }

    /// Takes over a connection another loop detached for this one.
    private func adoptMoved(_ moved: LoopBound<ClientConnection>, handle: ClientHandle) {
        let connection = moved.value
        do {
            try connection.attach(to: self)
        } catch {
            server.logger.warning("cannot watch a moved connection", metadata: ["error": "\(error)"])
            connection.close()
            return
        }
        connections[ObjectIdentifier(connection)] = Client(connection: connection, handle: handle)
        server.metrics.countConnectionMoved()
        // Input that arrived meanwhile is reported by epoll (level-
        // triggered); an incomplete command already buffered waits for it.
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
        if pendingMove != nil { continueMoving() }
    }

    func tick(_ loop: ServerLoop, nowMilliseconds: Int64) {
        listener?.resume()
        assignment?.windowEnded()
        guard nowMilliseconds >= nextIdleScan else { return }
        nextIdleScan = nowMilliseconds + idleScanMilliseconds
        let timeout = server.configuration.idleTimeoutMilliseconds
        for client in connections.values {
            let connection = client.connection
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
        for client in Array(connections.values) { client.connection.close() }
    }
}

/// How the rest of the server reaches a connection on another thread
/// (shutdown drains and closes every client).
///
/// Invariant: `home` names the loop the connection is on, or is moving to:
/// it is changed on the old loop's thread before the connection is handed
/// to the new loop. A task sent to the old loop just before that finds
/// `home` changed when it runs and follows the connection; it arrives on
/// the new loop after the connection does, since that loop runs its tasks
/// in order.
final class ClientHandle: Sendable {
    private let home: Mutex<LoopBound<ClientConnection>>

    init(_ connection: ClientConnection, loop: ServerLoop) {
        home = Mutex(LoopBound(connection, loop: loop))
    }

    /// The connection moves to `loop` (called on its current loop).
    func move(to loop: ServerLoop) {
        home.withLock { $0 = LoopBound($0.value, loop: loop) }
    }

    /// Finish the commands already read, send their replies, then close.
    func drain() {
        run { $0.drain() }
    }

    func close() {
        run { $0.close() }
    }

    private func run(_ body: @escaping @Sendable (ClientConnection) -> Void) {
        let target = home.withLock { $0 }
        target.loop.execute { [self] in
            let current = home.withLock { $0 }
            guard current.loop === target.loop else { return run(body) }
            body(current.value)
        }
    }
}
