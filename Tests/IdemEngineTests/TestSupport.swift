import Foundation
import Testing
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
    /// prepared ahead of the next roll holds only its header, and under
    /// `never`/`everysec` the zeros reserved after it).
    func segmentPaths() throws -> [String] {
        try fileSystem.listDirectory(directory).compactMap { name in
            LogFormat.segmentNumber(fromName: name).map { (number: $0, path: directory + "/" + name) }
        }.sorted { $0.number < $1.number }.filter { segment in
            guard let contents = try? fileSystem.readFile(segment.path) else { return false }
            let scan = contents.withUnsafeBytes { LogSegmentScan(bytes: $0, segmentNumber: segment.number, salvage: false) }
            return scan.validEnd > LogFormat.segmentHeaderSize || !scan.damage.isEmpty
        }.map(\.path)
    }

    /// Where the valid records of segment `path` end (its logical length;
    /// a mapped segment's file runs on in zeros).
    func validEnd(ofSegment path: String) throws -> Int {
        let number = try #require(LogFormat.segmentNumber(fromName: path.lastPathComponent))
        let contents = try fileSystem.readFile(path)
        return contents.withUnsafeBytes { LogSegmentScan(bytes: $0, segmentNumber: number, salvage: false).validEnd }
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
