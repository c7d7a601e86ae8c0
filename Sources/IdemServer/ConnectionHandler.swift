import NIOCore
import RESP

/// Sent down a connection's pipeline at shutdown: finish the commands
/// already read, send their replies, then close.
struct DrainEvent: Sendable {}

/// One client connection: bytes in → `RESPRequestParser` → commands →
/// replies out, in order.
///
/// Invariants:
/// - Replies leave in the order their commands arrived. A reply that is
///   ready while an earlier one still waits (a write awaiting its group
///   commit) is held in `slots` until everything before it is written.
/// - At most `maxPendingCommands` replies wait at once, and nothing more is
///   parsed while the socket is not writable: past either bound the handler
///   stops reading (it holds back `read()`), so a client that pipelines
///   without reading replies is slowed down, never buffered without bound.
/// - A command that only reads runs after every earlier command of the
///   connection has completed, so it sees their writes (writes themselves
///   are ordered by the engine's commit pipeline and may overlap).
/// - Everything here runs on the channel's event loop; command handlers
///   that need the disk or a durable write hand back a `PendingReply`
///   instead of blocking it.
/// - Writes under `everysec`/`never` reach the log in one append per
///   event-loop iteration: a batch that issued any waits for the task it
///   queues, which runs after every channel of the iteration has been read
///   (`Engine.writeDeferredLog`), so replies go out after their records
///   are in the OS — as Redis writes its AOF before its replies.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Slot {
        case waiting
        case ready(RESPValue)
    }

    private let server: ServerContext
    private let parser: RESPRequestParser
    private var session: Session?
    /// How replies completed elsewhere reach this channel's event loop;
    /// set with `session`, before any command runs.
    private var mailbox: LoopMailbox?
    /// Bytes read and not yet parsed: the channel's receive buffer itself
    /// (no copy) until a batch ends with an incomplete command, whose bytes
    /// then move to a buffer of our own (`ownsInput`).
    private var input = ByteBuffer()
    private var ownsInput = false
    private var output = ByteBuffer()
    private var scratch: [UInt8] = []

    /// Replies not yet written: `slots[slotHead...]`, the first being
    /// command number `firstSlotID`. Empty when nothing waits.
    private var slots: [Slot] = []
    private var slotHead = 0
    private var firstSlotID = 0

    /// Parse nothing more; close once every reply is out (QUIT, a protocol
    /// error, shutdown).
    private var closeAfterReplies = false
    private var closing = false
    /// A `read()` held back while paused.
    private var readHeld = false
    private var processing = false
    /// A flush after a burst of completed replies is queued.
    private var flushScheduled = false
    /// A command of this batch waits for its log write.
    private var awaitingLogWrite = false
    private var registered = false

    init(server: ServerContext) {
        self.server = server
        self.parser = RESPRequestParser(limits: server.configuration.parserLimits)
    }

    // MARK: Lifecycle

    func channelActive(context: ChannelHandlerContext) {
        let info = ClientInfo(id: server.clients.makeID(),
                              remoteAddress: Self.describe(context.remoteAddress),
                              localAddress: Self.describe(context.localAddress), connectedAt: server.now)
        output = context.channel.allocator.buffer(capacity: 1024)
        guard !server.draining.load(ordering: .relaxed), server.clients.register(info, channel: context.channel) else {
            server.metrics.countConnection(accepted: false)
            var refusal = context.channel.allocator.buffer(capacity: 64)
            refusal.writeString("-ERR max number of clients reached\r\n")
            context.writeAndFlush(wrapOutboundOut(refusal)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        registered = true
        mailbox = server.mailbox(for: context.eventLoop)
        server.metrics.countConnection(accepted: true)
        session = Session(info: info, user: server.users.initialUser,
                          metrics: server.metrics.shard(for: context.eventLoop))
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        unregister()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        unregister()
    }

    private func unregister() {
        guard registered else { return }
        registered = false
        closing = true
        if let session { server.clients.unregister(session.info.id) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        server.logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is DrainEvent:
            closeAfterReplies = true
            closeIfDone(context)
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            server.logger.debug("closing idle client", metadata: ["client_id": "\(session?.info.id ?? 0)"])
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: Input

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard session != nil, !closing else { return }
        session?.metrics.add(.bytesIn, bytes.readableBytes)
        if input.readableBytes == 0 {
            input = bytes
            ownsInput = false
        } else {
            input.writeBuffer(&bytes)
        }
        process(context)
    }

    func read(context: ChannelHandlerContext) {
        if isPaused(context) {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeIfPossible(context)
        context.fireChannelWritabilityChanged()
    }

    private var pendingReplies: Int { slots.count - slotHead }

    private func isPaused(_ context: ChannelHandlerContext) -> Bool {
        pendingReplies >= server.configuration.maxPendingCommands || !context.channel.isWritable
    }

    private func resumeIfPossible(_ context: ChannelHandlerContext) {
        guard !closing, !isPaused(context) else { return }
        if input.readableBytes > 0 { process(context) }
        if readHeld && !isPaused(context) {
            readHeld = false
            context.read()
        }
    }

    /// Runs every complete command in `input`, then writes the replies
    /// that are ready in one flush.
    private func process(_ context: ChannelHandlerContext) {
        guard !processing, let session else { return }
        processing = true
        defer { processing = false }
        parsing: while !closeAfterReplies && !closing && input.readableBytes > 0 && !isPaused(context) {
            let result = input.withUnsafeReadableBytes { parser.parse($0) }
            switch result {
            case .incomplete:
                break parsing
            case .skip(let consumed):
                input.moveReaderIndex(forwardBy: consumed)
            case .protocolError(let message):
                server.metrics.protocolErrors.increment()
                server.logger.debug("protocol error", metadata: ["client_id": "\(session.info.id)", "error": "\(message)"])
                input.moveReaderIndex(to: input.writerIndex)
                reply(.error("ERR " + message))
                closeAfterReplies = true
            case .command(let arguments, let consumed):
                // Read your writes: a command that does not go through the
                // commit pipeline waits until this connection's earlier
                // writes are durable and visible (it is parsed again then).
                let command = server.commandIndex(named: arguments[0])
                if pendingReplies > 0 && !server.isWrite(command) { break parsing }
                input.moveReaderIndex(forwardBy: consumed)
                run(command, arguments, session: session, context: context)
                if output.readableBytes >= 256 * 1024 { flush(context) }
            }
        }
        if input.readableBytes == 0 {
            // Let go of the receive buffer so NIO reads into it again
            // without allocating (it reuses it only when no one else holds it).
            input = ByteBuffer()
            ownsInput = false
        } else if !ownsInput {
            var own = context.channel.allocator.buffer(capacity: max(input.readableBytes, 1024))
            own.writeBuffer(&input)
            input = own
            ownsInput = true
        } else if input.readerIndex >= 64 * 1024 {
            input.discardReadBytes()
        }
        if awaitingLogWrite {
            awaitingLogWrite = false
            let engine = server.engine
            context.eventLoop.execute { engine.writeDeferredLog() }
        }
        flush(context)
        closeIfDone(context)
    }

    private func run(_ command: Int, _ arguments: [[UInt8]], session: Session, context: ChannelHandlerContext) {
        let started = NIODeadline.now()
        switch server.execute(command, arguments, session: session, eventLoop: context.eventLoop) {
        case .reply(let value):
            record(command, value, started: started)
            reply(value)
        case .replyThenClose(let value):
            record(command, value, started: started)
            reply(value)
            closeAfterReplies = true
        case .pending(let pending):
            awaitingLogWrite = server.engine.options.defersLogWrites
            let id = firstSlotID + pendingReplies
            slots.append(.waiting)
            let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            pending.whenReady(on: mailbox!) { value in
                let (handler, context) = handler.value
                handler.record(command, value, started: started)
                handler.fill(id, with: value, context: context)
            }
        }
    }

    private func record(_ command: Int, _ value: RESPValue, started: NIODeadline) {
        let failed = if case .error = value { true } else { false }
        session?.metrics.recordCommand(server.metrics.commandSlot(command), failed: failed,
                                       nanoseconds: Int((NIODeadline.now() - started).nanoseconds))
    }

    // MARK: Output

    /// Queues a reply that is ready now.
    private func reply(_ value: RESPValue) {
        if pendingReplies == 0 {
            encode(value)
            firstSlotID += 1
        } else {
            slots.append(.ready(value))
        }
    }

    /// A waiting reply became ready: write it and every ready one after it.
    private func fill(_ id: Int, with value: RESPValue, context: ChannelHandlerContext) {
        guard !closing else { return }
        slots[slotHead + (id - firstSlotID)] = .ready(value)
        while slotHead < slots.count, case .ready(let ready) = slots[slotHead] {
            encode(ready)
            slotHead += 1
            firstSlotID += 1
        }
        if slotHead == slots.count {
            slots.removeAll(keepingCapacity: true)
            slotHead = 0
        } else if slotHead >= 1024 && slotHead * 2 >= slots.count {
            slots.removeFirst(slotHead)
            slotHead = 0
        }
        // Replies usually complete in bursts (a whole log write or group
        // commit at once): write them with one flush after the burst.
        guard !processing, !flushScheduled else { return }
        flushScheduled = true
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = handler.value
            handler.flushScheduled = false
            handler.flush(context)
            handler.closeIfDone(context)
            handler.resumeIfPossible(context)
        }
    }

    private func encode(_ value: RESPValue) {
        scratch.removeAll(keepingCapacity: true)
        RESPEncoder.encode(value, version: session?.protocolVersion ?? .resp2, into: &scratch)
        output.writeBytes(scratch)
    }

    private func flush(_ context: ChannelHandlerContext) {
        guard output.readableBytes > 0, !closing else { return }
        session?.metrics.add(.bytesOut, output.readableBytes)
        context.writeAndFlush(wrapOutboundOut(output), promise: nil)
        // Usually the socket took it all at once and the buffer is ours
        // again to reuse; if not, `clear` gives us fresh storage.
        if output.capacity > 64 * 1024 {
            output = context.channel.allocator.buffer(capacity: 1024)
        } else {
            output.clear()
        }
        // Past the high-water mark the handler stops reading; what is still
        // unwritten then is at most one batch of replies — unless they are
        // huge, which is what the limit is for.
        guard !context.channel.isWritable,
              let unwritten = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes),
              unwritten > server.configuration.maxOutputBufferBytes else { return }
        server.metrics.slowReadersDisconnected.increment()
        server.logger.warning("disconnecting a client that does not read its replies", metadata: [
            "client_id": "\(session?.info.id ?? 0)", "unwritten_bytes": "\(unwritten)",
        ])
        closing = true
        context.close(promise: nil)
    }

    private func closeIfDone(_ context: ChannelHandlerContext) {
        guard closeAfterReplies, !closing, pendingReplies == 0 else { return }
        flush(context)
        closing = true
        // Close once the last reply is on the wire (a write then close in
        // one go could drop it).
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: flushed)
        flushed.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    private static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "?" }
        switch address {
        case .v4, .v6: return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .unixDomainSocket: return address.pathname ?? "unix"
        }
    }
}
