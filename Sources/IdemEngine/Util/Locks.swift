import CIdemPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex with a condition variable, for the one place the engine needs to
/// *wait*: background threads sleeping until work arrives or a deadline
/// passes. (`Synchronization.Mutex` has no condition variable.)
///
/// The pthread objects live at stable heap addresses, which is why this is a
/// class that allocates them rather than a struct holding them inline.
final class ConditionLock: @unchecked Sendable {
    // @unchecked: all access to the pthread objects goes through the
    // pthread API, which is itself thread-safe.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        var mutexAttributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&mutexAttributes)
        #if canImport(Glibc)
        // Adaptive: a contended lock spins briefly before sleeping. The
        // commit lock is held for a microsecond or two at a time by two
        // event loops; sleeping and waking in the kernel cost more than
        // the wait (futex calls were 7 % of a pipelined SET's CPU).
        pthread_mutexattr_settype(&mutexAttributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        precondition(pthread_mutex_init(mutex, &mutexAttributes) == 0)
        pthread_mutexattr_destroy(&mutexAttributes)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        precondition(pthread_cond_init(condition, &attributes) == 0)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inline(__always)
    func lock() { pthread_mutex_lock(mutex) }

    @inline(__always)
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Wakes every waiter. Call with or without the lock held.
    func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits for a broadcast. Must be called with the lock held; spurious
    /// wake-ups happen, so callers re-check their predicate in a loop.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a broadcast or until `nanoseconds` have passed.
    func wait(nanoseconds: UInt64) {
        #if canImport(Darwin)
        var relative = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        pthread_cond_timedwait_relative_np(condition, mutex, &relative)
        #else
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = UInt64(now.tv_nsec) + nanoseconds % 1_000_000_000
        var deadline = timespec()
        deadline.tv_sec = now.tv_sec + Int(nanoseconds / 1_000_000_000) + Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        pthread_cond_timedwait(condition, mutex, &deadline)
        #endif
    }
}

/// A reader-writer lock: many readers or one writer.
final class ReadWriteLock: @unchecked Sendable {
    // @unchecked: the pthread_rwlock API is itself thread-safe.
    private let rwlock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() {
        precondition(pthread_rwlock_init(rwlock, nil) == 0)
    }

    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deallocate()
    }

    @inline(__always)
    func withReadLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(rwlock)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }

    @inline(__always)
    func withWriteLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(rwlock)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }
}

/// Starts a detached OS thread named `name` (cut to the 15 bytes Linux
/// keeps, as `top -H` and `perf` show it). The engine's background work
/// runs on its own threads because it blocks in fsync and in file I/O,
/// which must never happen on Swift's cooperative pool or on an event loop.
/// Returns once the thread carries its name and priority, so nothing the
/// caller does next (a flush it signals, a test that looks) races them.
func spawnThread(name: String, priority: ThreadPriority = .normal, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        // @unchecked: the lets are written before the thread starts and read
        // by it; `attributesApplied` is guarded by `started`.
        let name: String
        let priority: ThreadPriority
        let body: @Sendable () -> Void
        let started = ConditionLock()
        var attributesApplied = false  // guarded by `started`
        init(name: String, priority: ThreadPriority, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.priority = priority
            self.body = body
        }

        func run() {
            #if os(Linux)
            _ = String(decoding: Array(name.utf8.prefix(15)), as: UTF8.self).withCString(idem_name_this_thread)
            if priority != .normal { priority.apply(toThread: idem_gettid()) }
            #endif
            started.withLock { attributesApplied = true }
            started.broadcast()
            body()
        }

        func waitUntilStarted() {
            started.lock()
            while !attributesApplied { started.wait() }
            started.unlock()
        }
    }
    let spawned = Box(name: name, priority: priority, body: body)
    let box = Unmanaged.passRetained(spawned).toOpaque()
    #if canImport(Darwin)
    var thread: pthread_t?
    #else
    var thread = pthread_t()
    #endif
    let result = pthread_create(&thread, nil, { raw in
        #if canImport(Darwin)
        let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
        #else
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        #endif
        box.run()
        return nil
    }, box)
    precondition(result == 0, "pthread_create failed: \(result)")
    #if canImport(Darwin)
    pthread_detach(thread!)
    #else
    pthread_detach(thread)
    #endif
    spawned.waitUntilStarted()
}
