#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Lets go of files and memory on a thread of its own, for the threads
/// that must not wait.
///
/// Why: closing the last descriptor of an unlinked file is when the
/// filesystem frees its blocks, and on a filesystem mounted with `discard`
/// the close waits for the device to trim them — about 0.6 ms per MB on
/// the machines this was measured on, 60–95 ms for the 22 tables (82 MB)
/// of the expired half of a 5M-key benchmark. Whoever lets go of a table
/// last pays that: the
/// maintenance thread (flushes, and so writers, would stall behind the
/// trim) or an event loop that held an old read view (a loop must never
/// wait on the device). Freeing the tables' filters and indexes is tens of
/// milliseconds of CPU as well. Handing both here keeps those threads free;
/// the files are already unlinked, so nothing can find them meanwhile.
///
/// One thread serves the whole process (descriptors are a process
/// resource); it is started on first use and sleeps when idle.
///
/// Invariant: jobs run in the order they were handed over (a batch's
/// closes before its releases), and `waitUntilIdle()` returns only when
/// every job handed over has finished — including those the work itself
/// handed over (a released table's file closes through here) — so a
/// caller that waits knows the space is back.
final class BackgroundReclaimer: Sendable {
    static let shared = BackgroundReclaimer()

    private enum Job {
        case close(Int32)
        case release(any Sendable)
    }

    private let lock = ConditionLock()
    // Guarded by `lock`.
    nonisolated(unsafe) private var queue: [Job] = []
    nonisolated(unsafe) private var handedOver: UInt64 = 0
    nonisolated(unsafe) private var finished: UInt64 = 0
    nonisolated(unsafe) private var threadStarted = false

    /// Closes `descriptor` on the reclaimer's thread; the caller must not
    /// use it again.
    func close(_ descriptor: Int32) {
        enqueue(.close(descriptor))
    }

    /// Drops `value` on the reclaimer's thread. If the caller's reference
    /// was the last (pass it as its last use), its deinitialisation — and
    /// that of everything only it holds — runs there.
    func release(_ value: consuming some Sendable) {
        enqueue(.release(value))
    }

    /// Blocks until no job is pending or running. (Not "until the jobs
    /// handed over before this call": releasing a table hands over the
    /// close of its file only as the release runs.)
    func waitUntilIdle() {
        lock.lock()
        while finished < handedOver { lock.wait() }
        lock.unlock()
    }

    private func enqueue(_ job: consuming Job) {
        lock.lock()
        queue.append(job)
        handedOver += 1
        let start = !threadStarted
        threadStarted = true
        lock.unlock()
        if start {
            spawnThread(name: "idem-reclaimer", priority: .background) { [self] in run() }
        } else {
            lock.broadcast()
        }
    }

    private func run() {
        lock.lock()
        while true {
            while queue.isEmpty { lock.wait() }
            var jobs: [Job] = []
            swap(&jobs, &queue)
            lock.unlock()
            let count = UInt64(jobs.count)
            for job in jobs {
                if case .close(let descriptor) = job { _ = Self.closeDescriptor(descriptor) }
            }
            // The released values go with the array, here rather than
            // under the lock; their deinitialisers may hand over closes,
            // counted in `handedOver` before this batch counts as finished.
            jobs = []
            lock.lock()
            finished += count
            lock.broadcast()
        }
    }

    private static func closeDescriptor(_ descriptor: Int32) -> Int32 {
        #if canImport(Glibc)
        Glibc.close(descriptor)
        #elseif canImport(Musl)
        Musl.close(descriptor)
        #else
        Darwin.close(descriptor)
        #endif
    }
}
