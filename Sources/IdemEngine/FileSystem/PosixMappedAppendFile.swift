#if os(Linux)
import Glibc

/// A file appended to by copying into a shared mapping of it, one window at
/// a time, instead of one `pwrite` per append.
///
/// Why: under `fsync=never`/`everysec` an acknowledged write must be in the
/// OS page cache (it survives `kill -9`), so every commit pays an append. A
/// `pwrite` of a 100-byte record costs 0.7–0.9 µs here, a copy into a
/// mapped page 0.13 µs (`Benchmarks/experiments/wal_mapped_append.c`) —
/// a fifth of an embedded put. The page is the page cache's: once copied,
/// the bytes are as safe from a process crash as after a `pwrite`, and
/// `fdatasync` writes them out like any other dirty page.
///
/// Why not under `fsync=always`: each sync then converts the window's
/// freshly written extents from "unwritten" to "written", a journal commit
/// that made syncs of 50 records 20–40 % slower in the same experiment;
/// group commit pays one `pwrite` per group, not per record.
///
/// Invariants (calls serialised by the owner, as for every `WritableFile`):
/// - `size` is the logical end: the offset of the next append. The file on
///   disk is `allocatedEnd` long, rounded up to whole windows, and every
///   byte from `size` to `allocatedEnd` is zero — space is reserved with
///   `posix_fallocate`, so a copy into the mapping never needs a block the
///   file system cannot give (which would be a `SIGBUS`, not an error).
/// - `window`, when present, covers the window holding `size` (or the one
///   before it, right after an append that filled a window), inside the
///   allocated part of the file; `nextWindow`, when present, is the
///   window after `window`, allocated and handed to `WindowPrefaulter`
///   when an append moved into `window` — so that a writer reaching it
///   finds its pages already faulted in, and no `fallocate` waits on the
///   way. (A fresh file maps its first window alone: see `moveWindow`.)
/// - `close()` cuts the file back to `size`. A file let go without a close,
///   or a crash, keeps its zero tail; readers of the log ignore zeros after
///   the last record (docs/FORMAT.md, WAL version 3).
final class PosixMappedAppendFile: WritableFile, @unchecked Sendable {
    // @unchecked: mutable state is touched only by the single owner, which
    // serialises calls as the protocol requires; `sync` reads only `fd`.
    static let windowSize = 1 << 20

    let path: String
    private let fd: Int32
    private var offset: Int64
    private var allocatedEnd: Int64
    private var window: MappedWindow?
    private var nextWindow: MappedWindow?
    private var closed = false

    /// Takes over `fd` (open for reading and writing) if a window of it can
    /// be reserved and mapped; nil when mapping is unsupported here (the
    /// caller falls back to `pwrite`). A real error (a full disk) throws.
    static func open(fd: Int32, path: String, size: Int64) throws(IOFailure) -> PosixMappedAppendFile? {
        let file = PosixMappedAppendFile(fd: fd, path: path, size: size)
        do {
            try file.moveWindow(to: size, prefaulting: false)
        } catch {
            // The caller keeps the descriptor either way.
            file.closed = true
            _ = ftruncate(fd, off_t(size))
            if error.code == ENODEV || error.code == EOPNOTSUPP || error.code == EINVAL || error.code == EACCES {
                return nil
            }
            throw error
        }
        return file
    }

    private init(fd: Int32, path: String, size: Int64) {
        self.fd = fd
        self.path = path
        self.offset = size
        self.allocatedEnd = size
    }

    /// Let go without an explicit close: a rolled-away WAL segment whose
    /// sync just finished. The zero tail stays (see the type's invariants);
    /// the close goes to `BackgroundReclaimer`, as `PosixWritableFile`'s.
    deinit {
        guard !closed else { return }
        unmapWindows()
        BackgroundReclaimer.shared.close(fd)
    }

    var size: Int64 { offset }

    func append(_ bytes: UnsafeRawBufferPointer) throws(IOFailure) {
        guard !bytes.isEmpty else { return }
        // Reserve the whole append first: once copying starts, nothing fails.
        try reserve(upTo: offset + Int64(bytes.count))
        var done = 0
        while done < bytes.count {
            // (`truncate` may have moved the end back before the window.)
            if window?.contains(offset) != true {
                try moveWindow(to: offset, prefaulting: true)
            }
            let current = window.unsafelyUnwrapped
            let position = Int(offset - current.start)
            let count = min(bytes.count - done, Self.windowSize - position)
            (current.base + position).copyMemory(from: bytes.baseAddress! + done, byteCount: count)
            done += count
            offset += Int64(count)
        }
    }

    func sync() throws(IOFailure) {
        // fdatasync writes back the pages dirtied through the mapping too:
        // they are the file's page-cache pages.
        guard fdatasync(fd) == 0 else { throw IOFailure(operation: "fdatasync", path: path, code: errno) }
    }

    /// Moves the logical end to `length`. Cutting back (a caller undoing
    /// an append) turns the bytes from `length` on into zeros again, so
    /// the zero tail stays zero; the reserve is kept. Moving forward only
    /// reserves: the bytes in between are zeros already.
    func truncate(to length: Int64) throws(IOFailure) {
        guard length >= 0 else { throw IOFailure(operation: "ftruncate", path: path, code: EINVAL) }
        try reserve(upTo: length)
        if length < offset {
            let zeros = [UInt8](repeating: 0, count: Int(offset - length))
            var done = 0
            while done < zeros.count {
                let n = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, zeros.count - done, off_t(length) + off_t(done)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw IOFailure(operation: "write", path: path, code: errno)
                }
                done += n
            }
        }
        offset = length
    }

    /// Unmaps, gives the zero tail back and closes.
    func close() {
        guard !closed else { return }
        closed = true
        unmapWindows()
        _ = ftruncate(fd, off_t(offset))
        _ = Glibc.close(fd)
    }

    /// Grows the file, in whole windows, to hold bytes up to `end`.
    private func reserve(upTo end: Int64) throws(IOFailure) {
        guard end > allocatedEnd else { return }
        let window = Int64(Self.windowSize)
        let newEnd = (end + window - 1) / window * window
        let result = posix_fallocate(fd, off_t(allocatedEnd), off_t(newEnd - allocatedEnd))
        guard result == 0 else { throw IOFailure(operation: "fallocate", path: path, code: result) }
        allocatedEnd = newEnd
    }

    /// Maps the window holding `position` (the one prefaulted ahead, if it
    /// is that one); when `prefaulting`, also reserves and maps the window
    /// after it and hands both to the prefaulter. The window left is
    /// unmapped on the reclaimer's thread: tearing down 256 mapped pages
    /// takes 60–150 µs here, and the caller holds the commit lock.
    ///
    /// Why not at open: a segment is created, its header appended and
    /// synced, then left until a roll (often made ahead of need). Pages
    /// prefaulted by then would be dirty zeros that the header's sync
    /// writes out — 2 MiB of I/O per segment for nothing, and pages the
    /// writer would fault on again. The first window of a segment (and
    /// the start of its second) is faulted by the writer, as before.
    private func moveWindow(to position: Int64, prefaulting: Bool) throws(IOFailure) {
        let start = position / Int64(Self.windowSize) * Int64(Self.windowSize)
        if let previous = window.take() { BackgroundReclaimer.shared.release(previous) }
        let current: MappedWindow
        if let next = nextWindow, next.start == start {
            current = next
        } else {
            try reserve(upTo: start + Int64(Self.windowSize))
            current = try map(at: start)
            if prefaulting { WindowPrefaulter.shared.prefault(current) }
        }
        window = current
        nextWindow = nil
        guard prefaulting else { return }
        // The window after: a failure here costs only the head start (the
        // append that needs it reserves and maps it then, and reports).
        if (try? reserve(upTo: current.end + Int64(Self.windowSize))) != nil,
           let next = try? map(at: current.end) {
            nextWindow = next
            WindowPrefaulter.shared.prefault(next)
        }
    }

    private func map(at start: Int64) throws(IOFailure) -> MappedWindow {
        try MappedWindow(fd: fd, path: path, start: start, length: Self.windowSize)
    }

    /// Lets go of the mappings (each is unmapped once the prefaulter, too,
    /// is done with it).
    private func unmapWindows() {
        window = nil
        nextWindow = nil
    }
}
#endif
