#if canImport(Glibc)
import Glibc
#if canImport(CIdemPosix)
import CIdemPosix
#endif
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `errno` names and messages, kept here so only this file talks to libc
/// about errors.
public enum ErrorNumber {
    public static let noSpace = ENOSPC
    public static let io = EIO
    public static let notFound = ENOENT
    public static let wouldBlock = EWOULDBLOCK
    public static let exists = EEXIST

    public static func describe(_ code: Int32) -> String {
        guard let message = strerror(code) else { return "errno \(code)" }
        return String(cString: message)
    }
}

/// The real file system, through POSIX calls.
public struct PosixFileSystem: FileSystem {
    public init() {}

    public func createDirectory(_ path: String) throws(IOFailure) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw IOFailure(operation: "mkdir", path: prefix, code: errno)
            }
            prefix += "/"
        }
    }

    public func listDirectory(_ path: String) throws(IOFailure) -> [String] {
        guard let directory = opendir(path) else {
            throw IOFailure(operation: "opendir", path: path, code: errno)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    public func readFile(_ path: String) throws(IOFailure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IOFailure(operation: "open", path: path, code: errno) }
        defer { _ = Glibc.close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw IOFailure(operation: "fstat", path: path, code: errno) }
        let size = Int(status.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        var failure: Int32 = 0
        bytes.withUnsafeMutableBytes { buffer in
            while done < size {
                let n = pread(fd, buffer.baseAddress! + done, size - done, off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if n == 0 { break }
                done += n
            }
        }
        if failure != 0 { throw IOFailure(operation: "read", path: path, code: failure) }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    public func openForReading(_ path: String) throws(IOFailure) -> any ReadableFile {
        let (fd, size) = try Self.openFile(path, flags: O_RDONLY)
        return PosixReadableFile(fd: fd, path: path, size: size)
    }

    public func openForAppending(_ path: String) throws(IOFailure) -> any WritableFile {
        let (fd, size) = try Self.openFile(path, flags: O_WRONLY | O_CREAT)
        return PosixWritableFile(fd: fd, path: path, size: size)
    }

    /// Appends through `PosixMappedAppendFile` on Linux; plainly where
    /// mapping is unavailable (another platform, a file system that cannot
    /// map or reserve space).
    public func openForMappedAppending(_ path: String) throws(IOFailure) -> any WritableFile {
        #if os(Linux)
        let (fd, size) = try Self.openFile(path, flags: O_RDWR | O_CREAT)
        do {
            if let mapped = try PosixMappedAppendFile.open(fd: fd, path: path, size: size) { return mapped }
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        return PosixWritableFile(fd: fd, path: path, size: size)
        #else
        return try openForAppending(path)
        #endif
    }

    /// Opens `path` and reports its current size.
    private static func openFile(_ path: String, flags: Int32) throws(IOFailure) -> (fd: Int32, size: Int64) {
        let fd = Glibc.open(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IOFailure(operation: "open", path: path, code: errno) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            _ = Glibc.close(fd)
            throw IOFailure(operation: "fstat", path: path, code: code)
        }
        return (fd, Int64(status.st_size))
    }

    /// Unlinks `path`; the blocks are freed on the background reclaimer's
    /// thread. Freeing is what an unlink of a closed file does inline, and
    /// on a filesystem mounted with `discard` it waits for the device
    /// (tens of milliseconds for a WAL segment); holding a descriptor over
    /// the unlink moves that wait to the close, which is handed over.
    public func removeFile(_ path: String) throws(IOFailure) {
        let holder = open(path, O_RDONLY | O_CLOEXEC)
        guard unlink(path) == 0 else {
            let code = errno
            if holder >= 0 { _ = Glibc.close(holder) }
            throw IOFailure(operation: "unlink", path: path, code: code)
        }
        if holder >= 0 { BackgroundReclaimer.shared.close(holder) }
    }

    public func rename(_ source: String, to destination: String) throws(IOFailure) {
        guard Glibc.rename(source, destination) == 0 else {
            throw IOFailure(operation: "rename", path: "\(source) -> \(destination)", code: errno)
        }
    }

    public func hardLink(_ source: String, to destination: String) throws(IOFailure) {
        guard Glibc.link(source, destination) == 0 else {
            throw IOFailure(operation: "link", path: "\(source) -> \(destination)", code: errno)
        }
    }

    public func syncDirectory(_ path: String) throws(IOFailure) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw IOFailure(operation: "open", path: path, code: errno) }
        defer { _ = Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw IOFailure(operation: "fsync", path: path, code: errno) }
    }

    public func lockFile(_ path: String) throws(IOFailure) -> any DirectoryLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IOFailure(operation: "open", path: path, code: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            _ = Glibc.close(fd)
            throw IOFailure(operation: "lock (is another process using this directory?)", path: path, code: code)
        }
        return PosixDirectoryLock(fd: fd)
    }
}

private final class PosixReadableFile: ReadableFile {
    let path: String
    let size: Int64
    private let fd: Int32

    init(fd: Int32, path: String, size: Int64) {
        self.fd = fd
        self.path = path
        self.size = size
    }

    /// The last reader of a table can be an event loop, and the table's
    /// file may be unlinked by now: see `BackgroundReclaimer`.
    deinit { BackgroundReclaimer.shared.close(fd) }

    func read(at offset: Int64, count: Int) throws(IOFailure) -> [UInt8] {
        guard count >= 0 else {
            throw IOFailure(operation: "read \(count) bytes at \(offset) of \(size)", path: path, code: EINVAL)
        }
        var failure: IOFailure?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(IOFailure) {
                try read(at: offset, into: UnsafeMutableRawBufferPointer(buffer))
                initialized = count
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOFailure) {
        let count = buffer.count
        guard offset >= 0, offset + Int64(count) <= size else {
            throw IOFailure(operation: "read \(count) bytes at \(offset) of \(size)", path: path, code: EINVAL)
        }
        var done = 0
        while done < count {
            let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw IOFailure(operation: "read", path: path, code: errno)
            }
            if n == 0 { throw IOFailure(operation: "read", path: path, code: EIO) }
            done += n
        }
    }

    func readIfResident(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        #if canImport(CIdemPosix)
        let count = buffer.count
        guard offset >= 0, count > 0, offset + Int64(count) <= size else { return false }
        // A short read means part of the range is not resident: give up
        // rather than wait for the rest.
        return idem_pread_resident(fd, buffer.baseAddress!, count, Int(offset)) == count
        #else
        return false
        #endif
    }
}

private final class PosixDirectoryLock: DirectoryLock {
    private let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func release() {
        // Closing the descriptor drops the flock; a second release is a no-op
        // at the kernel (EBADF), which is harmless here.
        _ = Glibc.close(fd)
    }
}

/// Invariant: `size` is the offset of the next append; bytes beyond it were
/// truncated away. Calls are serialised by the owner (see `WritableFile`).
private final class PosixWritableFile: WritableFile, @unchecked Sendable {
    // @unchecked: mutable state is touched only by the single owner, which
    // serialises calls as the protocol requires.
    let path: String
    private let fd: Int32
    private var offset: Int64
    private var closed = false
    /// Where the bytes not yet handed to writeback begin.
    private var writebackFrom: Int64

    /// Writeback is started every this many appended bytes. Why: on ext4
    /// (data=ordered) a journal commit waits for the data of every file
    /// with blocks allocated in its transaction, so the WAL's `fdatasync`
    /// under `always` would wait for a whole table at once when the table's
    /// own sync writes it out at the end of a flush. Written back as it is
    /// built, a table holds at most this much unwritten data (as RocksDB's
    /// `bytes_per_sync`). `Benchmarks/compare/wal_stall.c` measured it on
    /// this project's ext4 VM: the worst WAL sync during four 64 MiB table
    /// writes 28–30 ms without, 12–13 ms with; the p99 0.22 ms without,
    /// 0.33 ms with 256 KiB chunks (0.6 ms with 1 MiB ones).
    static let writebackChunk: Int64 = 256 << 10

    init(fd: Int32, path: String, size: Int64) {
        self.fd = fd
        self.path = path
        self.offset = size
        self.writebackFrom = size
    }

    /// Let go without an explicit close: a rolled-away WAL segment whose
    /// sync just finished, often unlinked by now (see `BackgroundReclaimer`).
    deinit { if !closed { BackgroundReclaimer.shared.close(fd) } }

    var size: Int64 { offset }

    func append(_ bytes: UnsafeRawBufferPointer) throws(IOFailure) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset))
            if n < 0 {
                if errno == EINTR { continue }
                throw IOFailure(operation: "write", path: path, code: errno)
            }
            done += n
            offset += Int64(n)
        }
        #if os(Linux)
        if offset - writebackFrom >= Self.writebackChunk {
            idem_start_writeback(fd, Int(writebackFrom), Int(offset - writebackFrom))
            writebackFrom = offset
        }
        #endif
    }

    func sync() throws(IOFailure) {
        #if canImport(Darwin)
        let result = fcntl(fd, F_FULLFSYNC)
        #else
        let result = fdatasync(fd)
        #endif
        guard result == 0 else { throw IOFailure(operation: "fdatasync", path: path, code: errno) }
    }

    func truncate(to length: Int64) throws(IOFailure) {
        guard ftruncate(fd, off_t(length)) == 0 else {
            throw IOFailure(operation: "ftruncate", path: path, code: errno)
        }
        offset = length
        writebackFrom = min(writebackFrom, length)
    }

    func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd)
    }
}
