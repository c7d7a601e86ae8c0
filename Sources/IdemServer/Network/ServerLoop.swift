import CIdemPosix
import Glibc
import Synchronization

/// Something registered with a `ServerLoop` that epoll reports on.
protocol LoopSource: AnyObject {
    /// Called on the loop's thread with the epoll event mask.
    func handle(events: UInt32)
}

/// What a loop does once per iteration and once per tick, supplied by the
/// layer above (the connections of this loop).
protocol LoopDelegate: AnyObject {
    /// After every ready descriptor and every queued task of an iteration
    /// has run: the point where the iteration's log records are appended
    /// and replies written, as Redis does in `beforeSleep`.
    func iterationEnded(_ loop: ServerLoop)
    /// About every `tickMilliseconds` (idle connections, paused accepts).
    func tick(_ loop: ServerLoop, nowMilliseconds: Int64)
    /// The loop is stopping: release every source.
    func stopping(_ loop: ServerLoop)
}

/// One thread running one epoll set: the RESP port's event loop.
///
/// Invariants:
/// - `sources`, `delegate` and everything a source or the delegate keeps
///   are touched only on the loop's own thread (`inLoop`); other threads
///   reach the loop only through `execute`, whose queue is the one piece of
///   shared state (behind `tasks`). That confinement is what the unchecked
///   `Sendable` conformance stands for.
/// - A task queued with `execute` runs in the iteration after the one that
///   drained the queue before it, never lost while the loop runs: the loop
///   drains the queue every iteration, and it blocks in `epoll_wait` only
///   after marking itself `sleeping` under the queue's lock with the queue
///   empty — a task queued after that finds `sleeping` set and writes the
///   eventfd (once: `wakePending`).
/// - After `stop`, queued and later tasks are dropped, not run.
final class ServerLoop: @unchecked Sendable {
    private struct TaskQueue {
        var tasks: [@Sendable () -> Void] = []
        /// The loop is in (or about to enter) `epoll_wait` with no task
        /// queued: only then does a new task need the eventfd. A busy loop
        /// drains the queue at the end of its iteration anyway, and a
        /// needless wake-up costs it a write, a read and an extra
        /// `epoll_wait` round.
        var sleeping = false
        var wakePending = false
        var stopped = false
    }

    let index: Int
    private let epollDescriptor: Int32
    private let wakeDescriptor: Int32
    private let queue = Mutex(TaskQueue())
    private let threadIdentity = Atomic<UInt>(0)
    private var thread: pthread_t?
    /// The thread's CPU-time clock: set in `start`, before any other thread
    /// can know the loop runs, and never changed after.
    private var cpuClock: clockid_t?

    // Loop thread only (hence exempt from exclusivity checks, which would
    // cost a thread-local lookup per event).
    @exclusivity(unchecked) private var sources: [LoopSource?] = []
    /// Released when the loop stops (it holds the loop in turn).
    private var delegate: LoopDelegate?
    private var tickMilliseconds: Int64 = 1000
    /// Coarse monotonic time of the current iteration, in milliseconds.
    @exclusivity(unchecked) private(set) var nowMilliseconds: Int64 = 0

    private static let wakeToken = UInt64.max
    private static let maxEvents = 256

    init(index: Int) throws(SystemError) {
        self.index = index
        epollDescriptor = idem_epoll_create()
        guard epollDescriptor >= 0 else { throw SystemError("epoll_create1") }
        wakeDescriptor = idem_eventfd()
        guard wakeDescriptor >= 0 else {
            Glibc.close(epollDescriptor)
            throw SystemError("eventfd")
        }
        guard idem_epoll_control(epollDescriptor, EPOLL_CTL_ADD, wakeDescriptor, UInt32(EPOLLIN.rawValue),
                                 Self.wakeToken) == 0 else {
            let error = SystemError("epoll_ctl")
            Glibc.close(wakeDescriptor)
            Glibc.close(epollDescriptor)
            throw error
        }
    }

    deinit {
        Glibc.close(wakeDescriptor)
        Glibc.close(epollDescriptor)
    }

    /// Starts the thread; `delegate` is called on it from then on.
    func start(delegate: LoopDelegate, tickMilliseconds: Int64) throws(SystemError) {
        self.delegate = delegate
        self.tickMilliseconds = max(10, tickMilliseconds)
        let unmanaged = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let status = pthread_create(&handle, nil, { argument in
            let loop = Unmanaged<ServerLoop>.fromOpaque(argument!).takeRetainedValue()
            loop.run()
            return nil
        }, unmanaged.toOpaque())
        guard status == 0 else {
            unmanaged.release()
            throw SystemError("pthread_create", code: status)
        }
        thread = handle
        var clock = clockid_t()
        if pthread_getcpuclockid(handle, &clock) == 0 { cpuClock = clock }
        _ = idem_pthread_setname_np(handle, "idem-loop-\(index)")
    }

    /// CPU time the loop's thread has used (user and system), or nil when
    /// unknown (before `start`, or once the thread is gone). Readable from
    /// any thread that learned of the loop after `start` returned.
    var cpuNanoseconds: UInt64? {
        guard let cpuClock else { return nil }
        var time = timespec()
        guard clock_gettime(cpuClock, &time) == 0 else { return nil }
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// Whether the caller runs on this loop's thread.
    var inLoop: Bool {
        threadIdentity.load(ordering: .acquiring) == UInt(bitPattern: Int(bitPattern: pthread_self()))
    }

    /// Runs `task` on the loop's thread, in a later iteration.
    func execute(_ task: @escaping @Sendable () -> Void) {
        let wake = queue.withLock { queue in
            guard !queue.stopped else { return false }
            queue.tasks.append(task)
            guard queue.sleeping && !queue.wakePending else { return false }
            queue.wakePending = true
            return true
        }
        if wake { signalWake() }
    }

    /// Stops the loop (its delegate releases every source) and waits for
    /// its thread to end. Not to be called from the loop itself.
    func stop() {
        precondition(!inLoop, "a loop cannot join its own thread")
        let wake = queue.withLock { queue in
            defer { queue.stopped = true }
            return !queue.stopped
        }
        guard wake, let thread else { return }
        signalWake()
        pthread_join(thread, nil)
        self.thread = nil
    }

    // MARK: Sources (loop thread only)

    /// Watches `descriptor` for `events`; `source` is told when they occur.
    func register(_ descriptor: Int32, events: UInt32, source: LoopSource) throws(SystemError) {
        guard idem_epoll_control(epollDescriptor, EPOLL_CTL_ADD, descriptor, events, UInt64(descriptor)) == 0 else {
            throw SystemError("epoll_ctl(ADD)")
        }
        let slot = Int(descriptor)
        if slot >= sources.count { sources.append(contentsOf: repeatElement(nil, count: slot + 1 - sources.count)) }
        sources[slot] = source
    }

    /// Changes the events watched for a registered descriptor.
    func modify(_ descriptor: Int32, events: UInt32) {
        _ = idem_epoll_control(epollDescriptor, EPOLL_CTL_MOD, descriptor, events, UInt64(descriptor))
    }

    /// Stops watching `descriptor` (before it is closed, so the number can
    /// be reused at once).
    func deregister(_ descriptor: Int32) {
        _ = idem_epoll_control(epollDescriptor, EPOLL_CTL_DEL, descriptor, 0, 0)
        let slot = Int(descriptor)
        if slot < sources.count { sources[slot] = nil }
    }

    // MARK: The loop

    private func run() {
        threadIdentity.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .releasing)
        var tokens = [UInt64](repeating: 0, count: Self.maxEvents)
        var events = [UInt32](repeating: 0, count: Self.maxEvents)
        var nextTick = Self.coarseMilliseconds() + tickMilliseconds
        while true {
            let idle = queue.withLock { queue in
                queue.sleeping = queue.tasks.isEmpty && !queue.stopped
                return queue.sleeping
            }
            let timeout = idle ? Int32(clamping: max(0, nextTick - nowMilliseconds)) : 0
            let count = tokens.withUnsafeMutableBufferPointer { tokens in
                events.withUnsafeMutableBufferPointer { events in
                    idem_epoll_wait(epollDescriptor, tokens.baseAddress, events.baseAddress, Int32(Self.maxEvents), timeout)
                }
            }
            if idle { queue.withLock { $0.sleeping = false } }
            nowMilliseconds = Self.coarseMilliseconds()
            if count > 0 {
                for position in 0..<Int(count) {
                    let token = tokens[position]
                    if token == Self.wakeToken {
                        var value: UInt64 = 0
                        _ = Glibc.read(wakeDescriptor, &value, 8)
                    } else if Int(token) < sources.count, let source = sources[Int(token)] {
                        source.handle(events: events[position])
                    }
                }
            }
            guard runTasks() else { break }
            delegate?.iterationEnded(self)
            if nowMilliseconds >= nextTick {
                delegate?.tick(self, nowMilliseconds: nowMilliseconds)
                nextTick = nowMilliseconds + tickMilliseconds
            }
        }
        delegate?.stopping(self)
        delegate = nil
        sources.removeAll()
    }

    /// Runs the queued tasks; false once the loop is to stop (the tasks
    /// are then dropped). Loop thread only: the loop calls it every
    /// iteration, and its delegate may call it again before writing replies
    /// (`LoopConnections.iterationEnded`), so that completions another
    /// thread posted during the iteration go out with this iteration's
    /// replies rather than costing an iteration of their own.
    @discardableResult
    func runTasks() -> Bool {
        assert(inLoop, "tasks run on their loop")
        let (tasks, stopped) = queue.withLock { queue in
            defer {
                queue.tasks.removeAll(keepingCapacity: true)
                queue.wakePending = false
            }
            return (queue.tasks, queue.stopped)
        }
        if stopped { return false }
        for task in tasks { task() }
        return true
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeDescriptor, &one, 8)
    }

    static func coarseMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}

/// A failed system call, with its errno.
struct SystemError: Error, CustomStringConvertible {
    let call: String
    let code: Int32

    init(_ call: String, code: Int32 = errno) {
        self.call = call
        self.code = code
    }

    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// A value that belongs to one `ServerLoop` and is handed through
/// `Sendable` closures only to be used back on that loop's thread.
///
/// Invariant: `value` is read only on `loop`'s thread (checked).
struct LoopBound<Value>: @unchecked Sendable {
    private let wrapped: Value
    let loop: ServerLoop

    init(_ value: Value, loop: ServerLoop) {
        self.wrapped = value
        self.loop = loop
    }

    var value: Value {
        assert(loop.inLoop, "a loop-bound value used off its loop")
        return wrapped
    }
}
