import Foundation
@testable import IdemEngine

/// An engine over a simulated file system, reopenable after a crash.
struct SimulatedStore {
    var fileSystem: SimulatedFileSystem
    var clock: ManualClock
    var directory = "/db"

    init(fileSystem: SimulatedFileSystem = SimulatedFileSystem(), clock: ManualClock = ManualClock()) {
        self.fileSystem = fileSystem
        self.clock = clock
    }

    func options(_ durability: Durability = .always, recovery: RecoveryMode = .strict,
                 segmentSize: Int64 = 64 << 20) -> EngineOptions {
        var options = EngineOptions(durability: durability)
        options.fileSystem = fileSystem
        options.clock = clock
        options.recovery = recovery
        options.walSegmentSize = segmentSize
        options.backgroundMaintenance = false
        return options
    }

    /// Options for LSM tests: a small memtable, hour-wide partitions,
    /// maintenance only when the test asks.
    func lsmOptions(_ durability: Durability = .never, memtableSize: Int = 1 << 20) -> EngineOptions {
        var options = options(durability)
        options.memtableSize = memtableSize
        options.partitionWidth = 3_600_000
        options.hotBlockSize = 1024
        options.coldAfter = 100 * 3_600_000
        return options
    }

    /// Opens with `options`, but always on this store's file system and clock.
    func openLSM(_ options: EngineOptions) throws -> Engine {
        var options = options
        options.fileSystem = fileSystem
        options.clock = clock
        return try Engine.open(directory: directory, options: options)
    }

    func tableFiles() throws -> [String] {
        let cold = directory + "/cold"
        return try fileSystem.listDirectory(directory).filter { $0.hasSuffix(".sst") }.map { directory + "/" + $0 }
            + (fileSystem.fileExists(cold) ? try fileSystem.listDirectory(cold).filter { $0.hasSuffix(".sst") }.map { cold + "/" + $0 } : [])
    }

    func open(_ durability: Durability = .always, recovery: RecoveryMode = .strict,
              segmentSize: Int64 = 64 << 20) throws -> Engine {
        try Engine.open(directory: directory, options: options(durability, recovery: recovery, segmentSize: segmentSize))
    }

    /// The store a reboot would find after power loss now.
    func crashed(_ mode: SimulatedFileSystem.CrashMode = .dropUnsynced) -> SimulatedStore {
        var copy = self
        copy.fileSystem = fileSystem.crashClone(mode)
        return copy
    }

    /// WAL segments in use: those holding more than a header (a segment
    /// prepared ahead of the next roll holds only its header).
    func segmentPaths() throws -> [String] {
        try fileSystem.listDirectory(directory).filter { LogFormat.segmentNumber(fromName: $0) != nil }.sorted()
            .map { directory + "/" + $0 }
            .filter { (try? fileSystem.readFile($0).count) ?? 0 > LogFormat.segmentHeaderSize }
    }
}

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

/// A seed from the environment (IDEM_TEST_SEED) or a fresh one; tests print
/// it so any failure can be replayed.
func testSeed() -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["IDEM_TEST_SEED"], let seed = UInt64(text) { return seed }
    return UInt64.random(in: 0...UInt64.max)
}

func makeTemporaryDirectory() -> String {
    var template = Array((NSTemporaryDirectory() + "idem-test-XXXXXX").utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    return path
}
