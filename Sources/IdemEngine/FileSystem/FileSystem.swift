/// The only door between the engine and the operating system's files
/// (LevelDB's `Env`, Pebble's `vfs.FS`). Everything the engine persists goes
/// through it, so tests can substitute `SimulatedFileSystem` and break
/// writes, syncs and renames, or crash and keep only what was synced.
///
/// Paths are plain strings joined with "/". Directory entries (creations,
/// renames, removals) are durable only after `syncDirectory` on the parent.
public protocol FileSystem: Sendable {
    /// Creates the directory and any missing parents; no error if it exists.
    func createDirectory(_ path: String) throws(IOFailure)
    /// Names (not paths) of the entries in a directory, in no defined order.
    func listDirectory(_ path: String) throws(IOFailure) -> [String]
    func fileExists(_ path: String) -> Bool
    /// The whole contents of a file.
    func readFile(_ path: String) throws(IOFailure) -> [UInt8]
    /// Opens a file for positioned reads. The handle keeps reading the same
    /// file even after it is removed or renamed (POSIX semantics).
    func openForReading(_ path: String) throws(IOFailure) -> any ReadableFile
    /// Opens a file for writing at its end, creating it (empty) if missing.
    func openForAppending(_ path: String) throws(IOFailure) -> any WritableFile
    /// `openForAppending` for a log written in many small appends and
    /// synced rarely: where it can, the file system copies appends into a
    /// shared mapping of space it reserved ahead, rather than making a
    /// system call each. The file may then be longer than `size`, by zeros:
    /// `close()` cuts them away, but a file let go without a close, or a
    /// crash, keeps them (readers of such a file must accept a zero tail).
    func openForMappedAppending(_ path: String) throws(IOFailure) -> any WritableFile
    func removeFile(_ path: String) throws(IOFailure)
    func rename(_ source: String, to destination: String) throws(IOFailure)
    /// A second name for an existing file (a hard link); fails across file
    /// systems (`EXDEV`), where callers copy instead.
    func hardLink(_ source: String, to destination: String) throws(IOFailure)
    /// Makes the directory's entries durable (fsync on the directory).
    func syncDirectory(_ path: String) throws(IOFailure)
    /// Takes an exclusive advisory lock, so two processes never open one
    /// data directory. Released by `DirectoryLock.release()` or process exit.
    func lockFile(_ path: String) throws(IOFailure) -> any DirectoryLock
}

extension FileSystem {
    /// File systems with no mapping append plainly.
    public func openForMappedAppending(_ path: String) throws(IOFailure) -> any WritableFile {
        try openForAppending(path)
    }
}

/// A file open for appending. Not safe for concurrent use: its owner
/// serialises calls (the WAL writer holds it under a lock).
public protocol WritableFile: AnyObject, Sendable {
    var path: String { get }
    /// Bytes in the file, including those not yet synced.
    var size: Int64 { get }
    /// Writes all of `bytes` at the end, or throws. After a throw, some
    /// prefix of `bytes` may have reached the file; the caller truncates.
    func append(_ bytes: UnsafeRawBufferPointer) throws(IOFailure)
    /// Makes the written bytes durable (fdatasync).
    func sync() throws(IOFailure)
    /// Cuts the file to `length` bytes; later appends start there.
    func truncate(to length: Int64) throws(IOFailure)
    func close()
}

extension WritableFile {
    /// Appends a slice of a byte array (see `append(_:)`).
    public func append(_ bytes: ArraySlice<UInt8>) throws(IOFailure) {
        var failure: IOFailure?
        bytes.withUnsafeBytes { raw in
            do throws(IOFailure) { try append(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// A file open for positioned reads; safe for concurrent use.
public protocol ReadableFile: AnyObject, Sendable {
    var path: String { get }
    var size: Int64 { get }
    /// Exactly `count` bytes at `offset`; a read past the end is an error.
    func read(at offset: Int64, count: Int) throws(IOFailure) -> [UInt8]
    /// `read` into `buffer` (exactly `buffer.count` bytes at `offset`): for
    /// callers that decode in place and keep no copy.
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOFailure)
    /// `read(at:into:)` if it needs no disk I/O (the OS page cache holds
    /// every byte); false when it would wait for the disk, or cannot tell.
    func readIfResident(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Bool
}

extension ReadableFile {
    public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOFailure) {
        let bytes = try read(at: offset, count: buffer.count)
        buffer.copyBytes(from: bytes)
    }

    public func readIfResident(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Bool { false }
}

public protocol DirectoryLock: AnyObject, Sendable {
    func release()
}

/// A failed file-system call: what was attempted, on which path, and the
/// operating system's error number.
public struct IOFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var code: Int32

    public init(operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String {
        "\(operation) \(path): \(ErrorNumber.describe(code))"
    }

    /// True when the device is full (ENOSPC): the write may succeed later.
    public var isOutOfSpace: Bool { code == ErrorNumber.noSpace }
}

extension String {
    /// `directory/name`.
    func appendingPathComponent(_ name: String) -> String {
        hasSuffix("/") ? self + name : self + "/" + name
    }

    /// The part after the last "/".
    var lastPathComponent: String {
        split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? self
    }
}
