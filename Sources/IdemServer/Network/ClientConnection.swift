import CIdemPosix
import Glibc
import IdemEngine
import Idempotency
import RESP

/// One client connection: bytes in → `RESPRequestParser` → commands →
/// replies out, in order.
///
/// Invariants:
/// - Everything here runs on the owning loop's thread; command handlers
///   that need the disk or a durable write hand back a `PendingReply`
///   instead of blocking it.
/// - Replies leave in the order their commands arrived. A reply that is
///   ready while an earlier one still waits (a write awaiting its group
///   commit) is held in `slots` until everything before it is encoded.
/// - At most `maxPendingCommands` replies wait at once, and nothing more is
///   parsed or read while more than `outputHighWater` bytes of replies are
///   unsent: past either bound the socket is not watched for input, so a
///   client that pipelines without reading replies is slowed down, never
///   buffered without bound; past `maxOutputBufferBytes` it is
///   disconnected.
/// - A command that only reads runs after every earlier command of the
///   connection has completed, so it sees their writes (writes themselves
///   are ordered by the engine's commit pipeline and may overlap).
/// - Output is written at the end of the loop's iteration
///   (`LoopConnections.iterationEnded`), after the iteration's log append.
/// - Once `closed`, the descriptor is never touched again (its number may
///   already belong to another connection); replies completing later are
///   dropped.
///
/// Confinement to the loop's thread is also why the mutable state below
/// is exempt from the runtime's exclusivity checks (`@exclusivity`): each
/// would cost a thread-local lookup per access, dozens per command, to
/// enforce what the loop already guarantees.
final class ClientConnection: LoopSource {
    private enum Slot {
        case waiting
        case ready(RESPValue)
    }

    let session: Session
    private let descriptor: Int32
    /// Changes only when the connection moves to another loop
    /// (`detach`, then `attach` on the new loop's thread).
    @exclusivity(unchecked) private unowned var owner: LoopConnections
    private let server: ServerContext
    private let parser: RESPRequestParser
    /// The command being parsed, refilled for every one (see
    /// `RequestArguments` on why it is reused).
    @exclusivity(unchecked) private var arguments = RequestArguments()

    /// Unparsed input: `input[inputStart..<inputEnd]`. Empty (no memory)
    /// while the connection is idle: see `releaseIdleBuffers`.
    @exclusivity(unchecked) private var input = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    @exclusivity(unchecked) private var inputStart = 0
    @exclusivity(unchecked) private var inputEnd = 0
    /// Replies encoded and not yet sent: `output[outputSent...]`.
    @exclusivity(unchecked) private var output: [UInt8] = []
    @exclusivity(unchecked) private var outputSent = 0

    /// Replies not yet encoded: `slots[slotHead...]`, the first being
    /// command number `firstSlotID`. Empty when nothing waits.
    @exclusivity(unchecked) private var slots: [Slot] = []
    @exclusivity(unchecked) private var slotHead = 0
    @exclusivity(unchecked) private var firstSlotID = 0

    /// Parse nothing more; close once every reply is out (QUIT, a protocol
    /// error, shutdown).
    @exclusivity(unchecked) private var closeAfterReplies = false
    @exclusivity(unchecked) private(set) var closed = false
    @exclusivity(unchecked) private var processing = false
    /// The events the loop watches for (EPOLLIN, EPOLLOUT).
    @exclusivity(unchecked) private var watched = UInt32(EPOLLIN.rawValue)
    /// In the owner's dirty list.
    @exclusivity(unchecked) var isDirty = false
    /// The loop's time of the last read, for the idle timeout.
    @exclusivity(unchecked) private(set) var lastReadAt: Int64

    private static let readSize = 16 * 1024
    private static let outputHighWater = 512 * 1024

    init(descriptor: Int32, info: ClientInfo, owner: LoopConnections) {
        self.descriptor = descriptor
        self.owner = owner
        self.server = owner.server
        self.parser = RESPRequestParser(limits: owner.server.configuration.parserLimits)
        self.session = Session(info: info, user: owner.server.users.initialUser, metrics: owner.metrics)
        self.lastReadAt = owner.loop.nowMilliseconds
    }

    deinit {
        input.deallocate()
    }

    /// An idle connection gives back its buffers (many thousands of idle
    /// clients must not hold 16 KiB each); the next read allocates again.
    func releaseIdleBuffers() {
        guard !closed, inputStart == inputEnd, input.count > 0 else { return }
        input.deallocate()
        input = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        inputStart = 0
        inputEnd = 0
        if unsentBytes == 0 { output = [] }
    }

    private var pendingReplies: Int { slots.count - slotHead }
    private var unsentBytes: Int { output.count - outputSent }

    private var isPaused: Bool {
        pendingReplies >= server.configuration.maxPendingCommands || unsentBytes > Self.outputHighWater
    }

    // MARK: Events

    func handle(events: UInt32) {
        guard !closed else { return }
        if events & UInt32(EPOLLERR.rawValue) != 0 { return close() }
        if events & UInt32(EPOLLIN.rawValue | EPOLLHUP.rawValue) != 0 {
            // A hung-up peer that cannot be read from now is gone for good.
            if isPaused || closeAfterReplies, events & UInt32(EPOLLHUP.rawValue) != 0 { return close() }
            readAvailable()
        }
        // The end of the iteration writes the replies and settles which
        // events to watch.
        if !closed { owner.markDirty(self) }
    }

    /// Reads what the socket holds (a bounded number of times, so one
    /// client cannot monopolise the loop) and runs the commands in it.
    private func readAvailable() {
        for _ in 0..<16 {
            guard !closed, !isPaused, !closeAfterReplies else { return }
            reserveInput()
            let count = recv(descriptor, input.baseAddress! + inputEnd, input.count - inputEnd, 0)
            if count > 0 {
                inputEnd += count
                lastReadAt = owner.loop.nowMilliseconds
                session.metrics.add(.bytesIn, count)
                process()
                if inputEnd < input.count { return }
            } else if count == 0 {
                // The client closed its end: what it sent was processed;
                // replies still waiting have no one to go to.
                return close()
            } else {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR: continue
                default:
                    server.logger.debug("connection error", metadata: ["error": "\(SystemError("recv"))"])
                    return close()
                }
            }
        }
    }

    /// Makes room for one read after the unparsed bytes.
    private func reserveInput() {
        if inputStart == inputEnd {
            inputStart = 0
            inputEnd = 0
        }
        guard input.count - inputEnd < Self.readSize else { return }
        let unparsed = inputEnd - inputStart
        if input.count == 0 {
            input = .allocate(byteCount: Self.readSize, alignment: 16)
            return
        }
        if inputStart > 0 && input.count - unparsed >= Self.readSize {
            // Slide the incomplete command to the front.
            input.baseAddress!.copyMemory(from: input.baseAddress! + inputStart, byteCount: unparsed)
        } else {
            // A command larger than the buffer (a big value): grow.
            let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: max(input.count * 2, unparsed + Self.readSize),
                                                                alignment: 16)
            larger.baseAddress!.copyMemory(from: input.baseAddress! + inputStart, byteCount: unparsed)
            input.deallocate()
            input = larger
        }
        inputStart = 0
        inputEnd = unparsed
    }

    /// Runs every complete command in the input.
    private func process() {
        guard !processing, !closed else { return }
        processing = true
        defer { processing = false }
        // When the previous command of this batch was answered at once,
        // its end is the next one's start: one clock reading per command.
        var previousEnd: UInt64?
        // Where the last look ahead at pipelined keys ended: the next one
        // starts once the commands it covered have run.
        var lookedAheadThrough = inputStart
        parsing: while !closeAfterReplies && !closed && inputEnd > inputStart && !isPaused {
            if inputStart >= lookedAheadThrough { lookedAheadThrough = prefetchPipelinedKeys() }
            let outcome = parser.parse(UnsafeRawBufferPointer(rebasing: input[inputStart..<inputEnd]), into: &arguments)
            switch outcome {
            case .incomplete:
                break parsing
            case .skip(let consumed):
                inputStart += consumed
            case .protocolError(let message):
                server.metrics.protocolErrors.increment()
                server.logger.debug("protocol error", metadata: ["client_id": "\(session.info.id)", "error": "\(message)"])
                inputStart = inputEnd
                reply(.error("ERR " + message))
                closeAfterReplies = true
            case .command(let consumed):
                // Read your writes: a command that does not go through the
                // commit pipeline waits until this connection's earlier
                // writes are durable and visible (it is parsed again then).
                let command = server.commandIndex(named: arguments[0])
                if pendingReplies > 0 && !server.isWrite(command) { break parsing }
                inputStart += consumed
                previousEnd = run(command, arguments, started: previousEnd ?? Self.monotonicNanoseconds())
            }
        }
    }

    /// Starts the memory loads of the lookups the next pipelined commands
    /// will make, all at once (`PipelineLookahead`, `ReadPrefetcher`), when
    /// the input holds more than one; returns the input offset up to which
    /// it looked.
    private func prefetchPipelinedKeys() -> Int {
        let pending = UnsafeRawBufferPointer(rebasing: input[inputStart..<inputEnd])
        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: Self.lookaheadKeys) { keys in
            let (count, end) = PipelineLookahead.keyRanges(in: pending, into: keys)
            if count >= 2 {
                let prefetcher = server.engine.readPrefetcher()
                let namespace = session.namespace
                for range in keys[..<count] where range.count <= Self.maxPrefetchedKeyLength {
                    Keyspace.withEngineKey(namespace: namespace, key: UnsafeRawBufferPointer(rebasing: pending[range])) {
                        prefetcher.prefetch($0)
                    }
                }
            }
            return inputStart + end
        }
    }

    /// Keys prefetched per look ahead: enough for a typical pipeline, few
    /// enough that the first one's loads are done before they are needed.
    private static let lookaheadKeys = 16
    /// Longer keys are not worth the copy a prefetch makes of them.
    private static let maxPrefetchedKeyLength = 512

    /// Runs one command that started at `started`; returns when it ended
    /// if its reply was ready at once (nil when the reply comes later).
    private func run(_ command: Int, _ arguments: RequestArguments, started: UInt64) -> UInt64? {
        switch server.execute(command, arguments, session: session) {
        case .reply(let value):
            let ended = record(command, value, started: started)
            reply(value)
            return ended
        case .replyThenClose(let value):
            let ended = record(command, value, started: started)
            reply(value)
            closeAfterReplies = true
            return ended
        case .pending(let pending):
            if server.engine.options.deferLogWrites { owner.logWriteNeeded = true }
            let id = firstSlotID + pendingReplies
            slots.append(.waiting)
            let connection = LoopBound(self, loop: owner.loop)
            pending.whenReady(on: owner.mailbox) { value in
                let connection = connection.value
                connection.record(command, value, started: started)
                connection.fill(id, with: value)
            }
            return nil
        }
    }

    /// Counts the command and its latency; returns the time it ended.
    @discardableResult
    private func record(_ command: Int, _ value: RESPValue, started: UInt64) -> UInt64 {
        let failed = if case .error = value { true } else { false }
        let ended = Self.monotonicNanoseconds()
        session.metrics.recordCommand(server.metrics.commandSlot(command), failed: failed,
                                      nanoseconds: Int(ended &- started))
        return ended
    }

    // MARK: Output

    /// Queues a reply that is ready now.
    private func reply(_ value: RESPValue) {
        if pendingReplies == 0 {
            RESPEncoder.encode(value, version: session.protocolVersion, into: &output)
            firstSlotID += 1
        } else {
            slots.append(.ready(value))
        }
    }

    /// A waiting reply became ready: encode it and every ready one after it.
    private func fill(_ id: Int, with value: RESPValue) {
        guard !closed else { return }
        slots[slotHead + (id - firstSlotID)] = .ready(value)
        while slotHead < slots.count, case .ready(let ready) = slots[slotHead] {
            RESPEncoder.encode(ready, version: session.protocolVersion, into: &output)
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
        owner.markDirty(self)
    }

    /// End of the loop's iteration: send what is encoded, pick up input
    /// left while paused (or held back by read-your-writes), close when
    /// done, and watch the events that now matter.
    func flushAndContinue() {
        guard !closed, send() else { return }
        if !closeAfterReplies && !isPaused && inputEnd > inputStart {
            process()
            guard send() else { return }
        }
        if closeAfterReplies && pendingReplies == 0 && unsentBytes == 0 { return close() }
        updateWatchedEvents()
    }

    /// Writes unsent output; false if the connection was closed.
    private func send() -> Bool {
        while unsentBytes > 0 {
            let count = output.withUnsafeBytes { bytes in
                idem_send(descriptor, bytes.baseAddress! + outputSent, bytes.count - outputSent)
            }
            if count > 0 {
                session.metrics.add(.bytesOut, count)
                outputSent += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else {
                server.logger.debug("connection error", metadata: ["error": "\(SystemError("send"))"])
                close()
                return false
            }
        }
        if unsentBytes == 0 {
            // Usually the socket took it all at once and the buffer is
            // reused; a huge one is let go.
            if output.capacity > 64 * 1024 { output = [] } else { output.removeAll(keepingCapacity: true) }
            outputSent = 0
        } else if unsentBytes > server.configuration.maxOutputBufferBytes {
            server.metrics.slowReadersDisconnected.increment()
            server.logger.warning("disconnecting a client that does not read its replies", metadata: [
                "client_id": "\(session.info.id)", "unwritten_bytes": "\(unsentBytes)",
            ])
            close()
            return false
        } else if outputSent >= 64 * 1024 {
            output.removeFirst(outputSent)
            outputSent = 0
        }
        return true
    }

    private func updateWatchedEvents() {
        guard !closed else { return }
        var wanted: UInt32 = 0
        if !isPaused && !closeAfterReplies { wanted |= UInt32(EPOLLIN.rawValue) }
        if unsentBytes > 0 { wanted |= UInt32(EPOLLOUT.rawValue) }
        guard wanted != watched else { return }
        watched = wanted
        owner.loop.modify(descriptor, events: wanted)
    }

    // MARK: Moving to another loop

    /// Nothing of the connection is tied to its loop's thread now: no
    /// reply is awaited (its completion would be delivered to this loop),
    /// none is unsent, and the loop has nothing left to do for it. Input
    /// of an incomplete command may be buffered: it moves with the
    /// connection.
    var canMove: Bool {
        !closed && !processing && !isDirty && !closeAfterReplies && pendingReplies == 0 && unsentBytes == 0
    }

    /// Stops the current loop watching the socket; from here on only the
    /// loop it is handed to may touch the connection (`attach`).
    func detach() {
        precondition(canMove, "a connection moves only while nothing of it is tied to its loop")
        owner.loop.deregister(descriptor)
    }

    /// Continues on `newOwner`'s loop, on that loop's thread.
    func attach(to newOwner: LoopConnections) throws(SystemError) {
        owner = newOwner
        session.metrics = newOwner.metrics
        try newOwner.loop.register(descriptor, events: watched, source: self)
    }

    // MARK: Closing

    /// Shutdown: finish the commands already read, then close.
    func drain() {
        guard !closed else { return }
        closeAfterReplies = true
        owner.markDirty(self)
    }

    func close() {
        guard !closed else { return }
        closed = true
        owner.loop.deregister(descriptor)
        Glibc.close(descriptor)
        owner.closed(self)
    }

    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
