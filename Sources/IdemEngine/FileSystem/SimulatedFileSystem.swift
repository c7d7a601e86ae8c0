import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An in-memory file system that remembers what has been made durable, for
/// crash and fault tests (LevelDB's fault_injection_test, Pebble's MemFS
/// with CrashClone, SQLite's crash VFS).
///
/// Model: a file's bytes become durable at `sync`; a directory's entries
/// (creations, renames, removals) become durable at `syncDirectory`.
/// `crashClone` returns the file system a machine would find after power
/// loss at this instant: only durable entries, each holding only its durable
/// bytes — optionally with the unsynced tail garbled instead of dropped.
///
/// Faults (`injectWriteFailure`, `injectSyncFailure`) make the next matching
/// calls fail with a chosen errno, optionally after writing part of the data.
public final class SimulatedFileSystem: FileSystem {
    /// File contents. Only touched with the owning file system's mutex held.
    final class Inode: @unchecked Sendable {
        // @unchecked: every access happens inside `state.withLock`.
        var data: [UInt8] = []
        var durable: [UInt8] = []
    }

    struct Directory {
        var entries: [String: Inode] = [:]
        var durableEntries: [String: Inode] = [:]
    }

    struct Fault {
        var code: Int32
        var pathContains: String?
        var remaining: Int?
        var bytesBeforeFailure: Int

        func matches(_ path: String) -> Bool {
            pathContains.map { path.contains($0) } ?? true
        }
    }

    struct State {
        var directories: [String: Directory] = ["/": Directory()]
        var locked: Set<String> = []
        var writeFault: Fault?
        var syncFault: Fault?
        var readFault: Fault?
        var beforeRead: (pathContains: String, action: @Sendable () -> Void)?
        var recorder: CrashRecorder?
        var syncCount = 0
    }

    let state = Mutex(State())
    private let syncLatency: UInt32

    /// `syncLatencyMicroseconds` makes every file sync take that long (a
    /// slow disk), so tests can observe writers gathering into one group.
    public init(syncLatencyMicroseconds: UInt32 = 0) {
        syncLatency = syncLatencyMicroseconds
    }

    /// How many file syncs have succeeded.
    public var syncCount: Int { state.withLock { $0.syncCount } }

    /// Runs `body`, taking a crash clone after every step that changes
    /// what is durable (file sync, directory sync), and returns them: every
    /// state a power loss during `body` could leave behind.
    public func crashStates(during body: () throws -> Void) rethrows -> [SimulatedFileSystem] {
        let recorder = CrashRecorder()
        state.withLock { $0.recorder = recorder }
        defer { state.withLock { $0.recorder = nil } }
        recorder.clones.withLock { $0.append(crashClone()) }
        try body()
        return recorder.clones.withLock { $0 }
    }

    private func recordCrashState() {
        guard let recorder = state.withLock({ $0.recorder }) else { return }
        let clone = crashClone()
        recorder.clones.withLock { $0.append(clone) }
    }

    /// Makes matching appends fail with `code` (e.g. ENOSPC). With
    /// `afterBytes`, that many bytes of the failing append still land first
    /// (a short write). `times: nil` keeps failing until cleared.
    public func injectWriteFailure(code: Int32, pathContains: String? = nil, afterBytes: Int = 0, times: Int? = nil) {
        state.withLock {
            $0.writeFault = Fault(code: code, pathContains: pathContains, remaining: times, bytesBeforeFailure: afterBytes)
        }
    }

    /// Makes matching syncs (file and directory) fail with `code` (e.g. EIO).
    public func injectSyncFailure(code: Int32, pathContains: String? = nil, times: Int? = nil) {
        state.withLock {
            $0.syncFault = Fault(code: code, pathContains: pathContains, remaining: times, bytesBeforeFailure: 0)
        }
    }

    public func clearFaults() {
        state.withLock {
            $0.writeFault = nil
            $0.syncFault = nil
            $0.readFault = nil
        }
    }

    public enum CrashMode: Sendable {
        /// Unsynced bytes and unsynced directory entries vanish.
        case dropUnsynced
        /// Unsynced bytes are replaced by deterministic garbage of the same
        /// length (a disk that wrote sectors out of order); unsynced
        /// directory entries vanish.
        case garbleUnsynced(seed: UInt64)
        /// A process crash (`kill -9`): the OS keeps every byte and entry
        /// it was given, synced or not.
        case processCrash
    }

    /// The state a fresh boot would find after power loss now (or, with
    /// `.processCrash`, a restart after the process died). The original
    /// stays usable (an abandoned engine may keep writing to it harmlessly).
    public func crashClone(_ mode: CrashMode = .dropUnsynced) -> SimulatedFileSystem {
        let clone = SimulatedFileSystem()
        state.withLock { state in
            var generator = SplitMix64(seed: { if case .garbleUnsynced(let seed) = mode { return seed } else { return 0 } }())
            var copies: [ObjectIdentifier: Inode] = [:]
            var directories: [String: Directory] = [:]
            for (path, directory) in state.directories {
                var survivor = Directory()
                let keepsEverything = if case .processCrash = mode { true } else { false }
                for (name, inode) in keepsEverything ? directory.entries : directory.durableEntries {
                    let copy = copies[ObjectIdentifier(inode)] ?? {
                        let copy = Inode()
                        var bytes = keepsEverything ? inode.data : inode.durable
                        if case .garbleUnsynced = mode, inode.data.count > bytes.count {
                            for _ in bytes.count..<inode.data.count {
                                bytes.append(UInt8(truncatingIfNeeded: generator.next()))
                            }
                        }
                        copy.data = bytes
                        copy.durable = bytes
                        copies[ObjectIdentifier(inode)] = copy
                        return copy
                    }()
                    survivor.entries[name] = copy
                    survivor.durableEntries[name] = copy
                }
                directories[path] = survivor
            }
            clone.state.withLock { $0.directories = directories }
        }
        return clone
    }

    // MARK: - Test helpers that reach past the API

    /// Overwrites one byte of a file, durably (a bit rot on the platter).
    public func corrupt(_ path: String, at offset: Int, xor mask: UInt8 = 0x01) {
        state.withLock { state in
            guard let inode = Self.lookup(path, in: state) else { return }
            inode.data[offset] ^= mask
            if offset < inode.durable.count { inode.durable[offset] ^= mask }
        }
    }

    /// Cuts a file durably to `length` bytes (a torn write found at boot).
    public func truncateDurably(_ path: String, to length: Int) {
        state.withLock { state in
            guard let inode = Self.lookup(path, in: state) else { return }
            inode.data = Array(inode.data.prefix(length))
            inode.durable = Array(inode.durable.prefix(length))
        }
    }

    public func fileSize(_ path: String) -> Int? {
        state.withLock { Self.lookup(path, in: $0)?.data.count }
    }

    // MARK: - FileSystem

    public func createDirectory(_ path: String) throws(IOFailure) {
        let normalized = Self.normalize(path)
        state.withLock { state in
            var prefix = ""
            for component in normalized.split(separator: "/") {
                prefix += "/" + component
                if state.directories[prefix] == nil { state.directories[prefix] = Directory() }
            }
        }
    }

    public func listDirectory(_ path: String) throws(IOFailure) -> [String] {
        let normalized = Self.normalize(path)
        return try state.withLock { state throws(IOFailure) in
            guard let directory = state.directories[normalized] else {
                throw IOFailure(operation: "opendir", path: path, code: ErrorNumber.notFound)
            }
            let subdirectories = state.directories.keys.filter { Self.split($0).parent == normalized && $0 != "/" }
                .map { Self.split($0).name }
            return Array(directory.entries.keys) + subdirectories
        }
    }

    public func fileExists(_ path: String) -> Bool {
        state.withLock { Self.lookup(path, in: $0) != nil || $0.directories[Self.normalize(path)] != nil }
    }

    public func readFile(_ path: String) throws(IOFailure) -> [UInt8] {
        try state.withLock { state throws(IOFailure) in
            guard let inode = Self.lookup(path, in: state) else {
                throw IOFailure(operation: "open", path: path, code: ErrorNumber.notFound)
            }
            return inode.data
        }
    }

    public func openForReading(_ path: String) throws(IOFailure) -> any ReadableFile {
        let inode = try state.withLock { state throws(IOFailure) -> Inode in
            guard let inode = Self.lookup(path, in: state) else {
                throw IOFailure(operation: "open", path: path, code: ErrorNumber.notFound)
            }
            return inode
        }
        return SimulatedReadableFile(fileSystem: self, inode: inode, path: path)
    }

    func read(_ inode: Inode, at offset: Int64, count: Int, path: String) throws(IOFailure) -> [UInt8] {
        let interleaved = state.withLock { state -> (@Sendable () -> Void)? in
            guard let pending = state.beforeRead, path.contains(pending.pathContains) else { return nil }
            state.beforeRead = nil
            return pending.action
        }
        interleaved?()
        return try state.withLock { state throws(IOFailure) -> [UInt8] in
            if let fault = state.readFault, fault.matches(path) {
                try Self.consumeFault(&state.readFault, path: path, operation: "read")
            }
            guard offset >= 0, count >= 0, Int(offset) + count <= inode.data.count else {
                throw IOFailure(operation: "read past end", path: path, code: ErrorNumber.io)
            }
            return Array(inode.data[Int(offset)..<(Int(offset) + count)])
        }
    }

    func size(of inode: Inode) -> Int64 {
        state.withLock { _ in Int64(inode.data.count) }
    }

    /// Runs `action` once, on the reading thread and with no lock of this
    /// file system held, just before the next read of a path containing
    /// `pathContains` — to put another thread's work at an exact point of
    /// a reader (a race made deterministic).
    public func beforeNextRead(pathContains: String, _ action: @escaping @Sendable () -> Void) {
        state.withLock { $0.beforeRead = (pathContains, action) }
    }

    /// Makes matching reads fail with `code` (e.g. EIO).
    public func injectReadFailure(code: Int32, pathContains: String? = nil, times: Int? = nil) {
        state.withLock {
            $0.readFault = Fault(code: code, pathContains: pathContains, remaining: times, bytesBeforeFailure: 0)
        }
    }

    public func openForAppending(_ path: String) throws(IOFailure) -> any WritableFile {
        let (parent, name) = Self.split(Self.normalize(path))
        let inode = try state.withLock { state throws(IOFailure) -> Inode in
            guard state.directories[parent] != nil else {
                throw IOFailure(operation: "open", path: path, code: ErrorNumber.notFound)
            }
            if let existing = state.directories[parent]!.entries[name] { return existing }
            let inode = Inode()
            state.directories[parent]!.entries[name] = inode
            return inode
        }
        return SimulatedWritableFile(fileSystem: self, inode: inode, path: path)
    }

    /// Models `PosixMappedAppendFile`: appends reserve zero-filled space
    /// ahead, `reservation` bytes at a time, which a sync makes durable
    /// with the records — so a crash leaves the zero tail a mapped log
    /// leaves, and unsynced records inside it revert to zeros.
    public func openForMappedAppending(_ path: String) throws(IOFailure) -> any WritableFile {
        guard let file = try openForAppending(path) as? SimulatedWritableFile else {
            preconditionFailure("openForAppending returns SimulatedWritableFile")
        }
        file.reservation = 4096
        return file
    }

    public func removeFile(_ path: String) throws(IOFailure) {
        let (parent, name) = Self.split(Self.normalize(path))
        try state.withLock { state throws(IOFailure) in
            guard state.directories[parent]?.entries.removeValue(forKey: name) != nil else {
                throw IOFailure(operation: "unlink", path: path, code: ErrorNumber.notFound)
            }
        }
    }

    public func rename(_ source: String, to destination: String) throws(IOFailure) {
        let from = Self.split(Self.normalize(source))
        let to = Self.split(Self.normalize(destination))
        try state.withLock { state throws(IOFailure) in
            guard let inode = state.directories[from.parent]?.entries[from.name],
                  state.directories[to.parent] != nil else {
                throw IOFailure(operation: "rename", path: "\(source) -> \(destination)", code: ErrorNumber.notFound)
            }
            state.directories[from.parent]!.entries[from.name] = nil
            state.directories[to.parent]!.entries[to.name] = inode
        }
    }

    public func hardLink(_ source: String, to destination: String) throws(IOFailure) {
        let from = Self.split(Self.normalize(source))
        let to = Self.split(Self.normalize(destination))
        try state.withLock { state throws(IOFailure) in
            guard let inode = state.directories[from.parent]?.entries[from.name],
                  state.directories[to.parent] != nil else {
                throw IOFailure(operation: "link", path: "\(source) -> \(destination)", code: ErrorNumber.notFound)
            }
            guard state.directories[to.parent]!.entries[to.name] == nil else {
                throw IOFailure(operation: "link", path: "\(source) -> \(destination)", code: ErrorNumber.exists)
            }
            state.directories[to.parent]!.entries[to.name] = inode
        }
    }

    public func syncDirectory(_ path: String) throws(IOFailure) {
        let normalized = Self.normalize(path)
        try state.withLock { state throws(IOFailure) in
            try Self.consumeFault(&state.syncFault, path: path, operation: "fsync")
            guard state.directories[normalized] != nil else {
                throw IOFailure(operation: "open", path: path, code: ErrorNumber.notFound)
            }
            state.directories[normalized]!.durableEntries = state.directories[normalized]!.entries
        }
        recordCrashState()
    }

    public func lockFile(_ path: String) throws(IOFailure) -> any DirectoryLock {
        let normalized = Self.normalize(path)
        try state.withLock { state throws(IOFailure) in
            guard !state.locked.contains(normalized) else {
                throw IOFailure(operation: "lock", path: path, code: ErrorNumber.wouldBlock)
            }
            state.locked.insert(normalized)
        }
        return SimulatedLock(fileSystem: self, path: normalized)
    }

    // MARK: - Internals used by the file handles

    func append(_ bytes: UnsafeRawBufferPointer, to inode: Inode, at offset: Int, path: String) throws(IOFailure) -> Int {
        try state.withLock { state throws(IOFailure) -> Int in
            if let fault = state.writeFault, fault.matches(path) {
                let partial = min(fault.bytesBeforeFailure, bytes.count)
                Self.write(UnsafeRawBufferPointer(rebasing: bytes[0..<partial]), into: inode, at: offset)
                try Self.consumeFault(&state.writeFault, path: path, operation: "write")
            }
            Self.write(bytes, into: inode, at: offset)
            return bytes.count
        }
    }

    func sync(_ inode: Inode, path: String) throws(IOFailure) {
        if syncLatency > 0 { usleep(syncLatency) }
        try state.withLock { state throws(IOFailure) in
            try Self.consumeFault(&state.syncFault, path: path, operation: "fdatasync")
            inode.durable = inode.data
            state.syncCount += 1
        }
        recordCrashState()
    }

    func truncate(_ inode: Inode, to length: Int) {
        state.withLock { _ in
            if inode.data.count > length { inode.data.removeLast(inode.data.count - length) }
        }
    }

    /// Grows the file with zeros to a multiple of `step` covering `end`.
    func reserve(_ inode: Inode, upTo end: Int, step: Int) {
        state.withLock { _ in
            guard inode.data.count < end else { return }
            let target = (end + step - 1) / step * step
            inode.data.append(contentsOf: repeatElement(0, count: target - inode.data.count))
        }
    }

    func zero(_ inode: Inode, from start: Int, to end: Int) {
        state.withLock { _ in
            for index in start..<min(end, inode.data.count) { inode.data[index] = 0 }
        }
    }

    func unlock(_ path: String) {
        _ = state.withLock { $0.locked.remove(path) }
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, into inode: Inode, at offset: Int) {
        if inode.data.count < offset + bytes.count {
            inode.data.append(contentsOf: repeatElement(0, count: offset + bytes.count - inode.data.count))
        }
        inode.data.withUnsafeMutableBytes { target in
            UnsafeMutableRawBufferPointer(rebasing: target[offset..<(offset + bytes.count)]).copyMemory(from: bytes)
        }
    }

    private static func consumeFault(_ fault: inout Fault?, path: String, operation: String) throws(IOFailure) {
        guard let current = fault, current.matches(path) else { return }
        if let remaining = current.remaining {
            fault = remaining <= 1 ? nil : Fault(code: current.code, pathContains: current.pathContains,
                                                  remaining: remaining - 1, bytesBeforeFailure: current.bytesBeforeFailure)
        }
        throw IOFailure(operation: operation, path: path, code: current.code)
    }

    private static func lookup(_ path: String, in state: State) -> Inode? {
        let (parent, name) = split(normalize(path))
        return state.directories[parent]?.entries[name]
    }

    static func normalize(_ path: String) -> String {
        "/" + path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }

    static func split(_ normalized: String) -> (parent: String, name: String) {
        guard let slash = normalized.lastIndex(of: "/") else { return ("/", normalized) }
        let parent = String(normalized[..<slash])
        return (parent.isEmpty ? "/" : parent, String(normalized[normalized.index(after: slash)...]))
    }
}

final class CrashRecorder: Sendable {
    let clones = Mutex<[SimulatedFileSystem]>([])
}

private final class SimulatedWritableFile: WritableFile, @unchecked Sendable {
    // @unchecked: `offset` is touched only by the single owner (see
    // `WritableFile`); the inode is guarded by the file system's mutex.
    let path: String
    private let fileSystem: SimulatedFileSystem
    private let inode: SimulatedFileSystem.Inode
    private var offset: Int
    /// Nonzero for a file opened with `openForMappedAppending`: appends
    /// grow the file with zeros in steps of this many bytes, and `close`
    /// cuts it back to `offset`.
    var reservation = 0

    init(fileSystem: SimulatedFileSystem, inode: SimulatedFileSystem.Inode, path: String) {
        self.fileSystem = fileSystem
        self.inode = inode
        self.path = path
        self.offset = fileSystem.state.withLock { _ in inode.data.count }
    }

    var size: Int64 { Int64(offset) }

    func append(_ bytes: UnsafeRawBufferPointer) throws(IOFailure) {
        if reservation > 0 { fileSystem.reserve(inode, upTo: offset + bytes.count, step: reservation) }
        do {
            offset += try fileSystem.append(bytes, to: inode, at: offset, path: path)
        } catch {
            // Some bytes may have landed; the file's true end is unknown to
            // the caller, which truncates back to what it last knew.
            throw error
        }
    }

    func sync() throws(IOFailure) {
        try fileSystem.sync(inode, path: path)
    }

    func truncate(to length: Int64) throws(IOFailure) {
        if reservation > 0 {
            fileSystem.zero(inode, from: Int(length), to: offset)
            fileSystem.reserve(inode, upTo: Int(length), step: reservation)
        } else {
            fileSystem.truncate(inode, to: Int(length))
        }
        offset = Int(length)
    }

    func close() {
        if reservation > 0 { fileSystem.truncate(inode, to: offset) }
    }
}

private final class SimulatedReadableFile: ReadableFile {
    let path: String
    private let fileSystem: SimulatedFileSystem
    private let inode: SimulatedFileSystem.Inode

    init(fileSystem: SimulatedFileSystem, inode: SimulatedFileSystem.Inode, path: String) {
        self.fileSystem = fileSystem
        self.inode = inode
        self.path = path
    }

    var size: Int64 { fileSystem.size(of: inode) }

    func read(at offset: Int64, count: Int) throws(IOFailure) -> [UInt8] {
        try fileSystem.read(inode, at: offset, count: count, path: path)
    }
}

private final class SimulatedLock: DirectoryLock {
    private let fileSystem: SimulatedFileSystem
    private let path: String
    init(fileSystem: SimulatedFileSystem, path: String) {
        self.fileSystem = fileSystem
        self.path = path
    }
    func release() { fileSystem.unlock(path) }
}

/// A small, fast, seedable generator (SplitMix64), so every randomised
/// test and simulation can print its seed and be replayed exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
