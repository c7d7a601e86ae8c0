#if os(Linux)
import CIdemPosix
import Glibc

/// One shared, writable mapping of part of a file, unmapped when the last
/// reference goes — so a thread prefaulting it can never touch memory
/// that has been unmapped (or mapped again for something else) meanwhile.
///
/// Invariant: `base ..< base + length` is mapped for the object's whole
/// life; the object itself never reads or writes the bytes.
final class MappedWindow: @unchecked Sendable {
    // @unchecked: every stored property is a constant, and the mapping's
    // bytes belong to whoever writes the file (`PosixMappedAppendFile`).
    /// The file offset the window starts at.
    let start: Int64
    let base: UnsafeMutableRawPointer
    let length: Int

    /// Maps `length` bytes of `fd` (the file at `path`) from `start`, a
    /// multiple of the page size.
    init(fd: Int32, path: String, start: Int64, length: Int) throws(IOFailure) {
        let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(start))
        guard let mapped, mapped != MAP_FAILED else { throw IOFailure(operation: "mmap", path: path, code: errno) }
        self.start = start
        self.base = mapped
        self.length = length
    }

    deinit { munmap(base, length) }

    var end: Int64 { start + Int64(length) }

    func contains(_ offset: Int64) -> Bool { offset >= start && offset < end }
}

/// Takes the page faults of a fresh mapped window on a thread of its own,
/// before the window's writer gets there.
///
/// Why: the first store to each page of a window finds (zeroes) the
/// page-cache page and asks the filesystem to make it writable
/// (`filemap_fault`, then `ext4_page_mkwrite` here): 256 faults per MiB,
/// taken by whoever appends — for the WAL, under the commit lock, so every
/// writer waits on them (3 % of a write-heavy server profile).
/// `MADV_POPULATE_WRITE` takes the same faults in one call per window, and
/// a writer that arrives afterwards finds every page mapped writable.
///
/// What it costs: populating a window takes about as much CPU as the
/// faults it saves (0.9–1.1 ms per window against 0.9 ms), on this thread
/// instead of the writer's; and the populated pages are dirty zeros, so a
/// periodic sync that comes before the writer writes them out, and the
/// writer's data later writes them again — at most one extra MiB of the
/// log's own volume, as a log that zero-fills its segments pays.
///
/// Invariants: a window handed over stays mapped until its population
/// ends (the queue holds a reference). Population changes page tables,
/// never bytes, so it may overlap the owner's writes to the same window.
/// Without MADV_POPULATE_WRITE (kernels before 5.14) nothing is done — a
/// store per page would race with the owner's writes.
final class WindowPrefaulter: Sendable {
    static let shared = WindowPrefaulter()

    private let lock = ConditionLock()
    // Guarded by `lock`.
    nonisolated(unsafe) private var queue: [MappedWindow] = []
    nonisolated(unsafe) private var busy = false
    nonisolated(unsafe) private var threadStarted = false
    nonisolated(unsafe) private var unsupported = false

    /// Faults `window` in, writable, soon; the caller need not wait.
    func prefault(_ window: MappedWindow) {
        lock.lock()
        guard !unsupported else {
            lock.unlock()
            return
        }
        queue.append(window)
        let start = !threadStarted
        threadStarted = true
        lock.unlock()
        if start {
            // Normal priority: the faults cost the same CPU wherever they
            // are taken, and a window populated after its writer arrived
            // saves nothing.
            spawnThread(name: "idem-prefault") { [self] in run() }
        } else {
            lock.broadcast()
        }
    }

    /// Blocks until every window handed over has been populated (tests).
    func waitUntilIdle() {
        lock.lock()
        while busy || !queue.isEmpty { lock.wait() }
        lock.unlock()
    }

    private func run() {
        lock.lock()
        while true {
            while queue.isEmpty { lock.wait() }
            var windows: [MappedWindow] = []
            swap(&windows, &queue)
            busy = true
            lock.unlock()
            var supported = true
            for window in windows where supported {
                if idem_populate_writable(window.base, window.length) != 0 && errno == EINVAL {
                    supported = false
                }
                // EFAULT: the file was cut back under the window (closed
                // meanwhile); nothing to do.
            }
            // The last reference to a window may be this one: unmap here,
            // not under the lock.
            windows = []
            lock.lock()
            unsupported = unsupported || !supported
            if !supported { queue.removeAll() }
            busy = false
            lock.broadcast()
        }
    }
}
#endif
