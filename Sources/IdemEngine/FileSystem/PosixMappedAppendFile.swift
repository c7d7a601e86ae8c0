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
/// - The mapping, when present, covers `windowStart ..< windowStart +
///   windowSize`, inside the allocated part of the file.
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
    private var window: UnsafeMutableRawPointer?
    private var windowStart: Int64 = 0
    private var closed = false

    /// Takes over `fd` (open for reading and writing) if a window of it can
    /// be reserved and mapped; nil when mapping is unsupported here (the
    /// caller falls back to `pwrite`). A real error (a full disk) throws.
    static func open(fd: Int32, path: String, size: Int64) throws(IOFailure) -> PosixMappedAppendFile? {
        let file = PosixMappedAppendFile(fd: fd, path: path, size: size)
        do {
            try file.moveWindow(to: size)
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
        unmapWindow()
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
            if window == nil || offset < windowStart || offset >= windowStart + Int64(Self.windowSize) {
                try moveWindow(to: offset)
            }
            let position = Int(offset - windowStart)
            let count = min(bytes.count - done, Self.windowSize - position)
            (window! + position).copyMemory(from: bytes.baseAddress! + done, byteCount: count)
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
        unmapWindow()
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

    /// Maps the window holding `position`, reserving it first.
    private func moveWindow(to position: Int64) throws(IOFailure) {
        let start = position / Int64(Self.windowSize) * Int64(Self.windowSize)
        try reserve(upTo: start + Int64(Self.windowSize))
        unmapWindow()
        let mapped = mmap(nil, Self.windowSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(start))
        guard let mapped, mapped != MAP_FAILED else { throw IOFailure(operation: "mmap", path: path, code: errno) }
        window = mapped
        windowStart = start
    }

    private func unmapWindow() {
        guard let window else { return }
        munmap(window, Self.windowSize)
        self.window = nil
    }
}
#endif
