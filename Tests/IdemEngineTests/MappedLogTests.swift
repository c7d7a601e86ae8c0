import Foundation
import Testing
@testable import IdemEngine

/// The WAL under `never`/`everysec` on the real file system: appends copied
/// into a shared mapping (`PosixMappedAppendFile`) are what a process crash
/// leaves in the page cache, and recovery reads such a log whole.
@Suite struct MappedLogTests {
    @Test func appendsAcrossWindowsAreInTheFileAndCloseCutsTheReserve() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fileSystem = PosixFileSystem()
        let path = directory + "/log"
        let file = try fileSystem.openForMappedAppending(path)
        #expect(file is PosixMappedAppendFile)
        var expected: [UInt8] = []
        var generator = SplitMix64(seed: 7)
        // Odd sizes, one larger than a window, together 2.2 windows.
        for size in [1, 1000, 4093, PosixMappedAppendFile.windowSize + 17, 300_000, 12, 900_000] {
            let chunk = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next() | 1) }
            try file.append(chunk[...])
            expected += chunk
            #expect(file.size == Int64(expected.count))
        }
        // What another process (or a restart after kill -9) reads now.
        let live = try fileSystem.readFile(path)
        #expect(live.count % PosixMappedAppendFile.windowSize == 0)
        #expect(Array(live.prefix(expected.count)) == expected)
        #expect(live[expected.count...].allSatisfy { $0 == 0 })

        // Undoing an append turns its bytes back into the zero reserve.
        try file.truncate(to: Int64(expected.count - 12))
        try file.append([1, 2, 3][...])
        let undone = try fileSystem.readFile(path)
        #expect(Array(undone.prefix(expected.count - 9)) == Array(expected.prefix(expected.count - 12)) + [1, 2, 3])
        #expect(undone[(expected.count - 9)...].allSatisfy { $0 == 0 })

        // Back across a window boundary: the next append lands where the
        // end now is, in the earlier window.
        let kept = PosixMappedAppendFile.windowSize - 5
        try file.truncate(to: Int64(kept))
        try file.append([7, 7, 7, 7, 7, 7, 7, 7][...])
        try file.sync()
        file.close()
        #expect(try fileSystem.readFile(path) == Array(expected.prefix(kept)) + [7, 7, 7, 7, 7, 7, 7, 7])
    }

    /// The window after the one being written is reserved, mapped and
    /// faulted in before the writer needs it: an append that fills the
    /// rest of one window and runs into the next takes (almost) no page
    /// fault — a page each, 256 a window, without the prefaulter. A file
    /// just opened maps its first window alone (its header's sync would
    /// write prefaulted zero pages out).
    @Test func theWindowAheadOfTheWriterIsFaultedInBeforeItIsReached() throws {
        try #require(Self.kernelPopulatesMappings(), "MADV_POPULATE_WRITE (Linux 5.14) is needed")
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fileSystem = PosixFileSystem()
        let path = directory + "/log"
        let file = try fileSystem.openForMappedAppending(path)
        defer { file.close() }
        let window = PosixMappedAppendFile.windowSize
        let header = [UInt8](repeating: 1, count: 100), fill = [UInt8](repeating: 2, count: window)
        try file.append(header[...])
        #expect(try Self.fileLength(path) == window, "nothing reserved ahead of a fresh file's first window")

        try file.append(fill[...])
        WindowPrefaulter.shared.waitUntilIdle()
        #expect(try Self.fileLength(path) == 3 * window, "the window ahead of the one the writer moved into is reserved")
        let faultsBefore = Self.minorFaultsOfThisThread()
        try file.append(fill[...])
        let faults = Self.minorFaultsOfThisThread() - faultsBefore
        #expect(faults < 16, "\(faults) page faults writing a window's worth")
        WindowPrefaulter.shared.waitUntilIdle()
        #expect(try Self.fileLength(path) == 4 * window, "and the one after it, once the writer moved on")
        #expect(try fileSystem.readFile(path).prefix(2 * window + 100) == (header + fill + fill)[...])
    }

    private static func kernelPopulatesMappings() -> Bool {
        let length = Int(getpagesize())
        guard let probe = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              probe != MAP_FAILED else { return false }
        defer { munmap(probe, length) }
        return madvise(probe, length, 23 /* MADV_POPULATE_WRITE */) == 0
    }

    private static func fileLength(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    }

    private static func minorFaultsOfThisThread() -> Int {
        var usage = rusage()
        getrusage(1 /* RUSAGE_THREAD: this thread alone */, &usage)
        return usage.ru_minflt
    }

    /// Copying the data directory of a running engine gives what `kill -9`
    /// would leave: every acknowledged write in mapped segments that run on
    /// in zeros. The copy opens with all of them and reports no damage.
    @Test(arguments: [Durability.never, .everysec])
    func aCopyOfARunningEnginesDirectoryRecoversEveryWrite(durability: Durability) async throws {
        let directory = makeTemporaryDirectory()
        let copy = makeTemporaryDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: copy)
        }
        var options = EngineOptions(durability: durability)
        options.backgroundMaintenance = false
        options.walSegmentSize = 256 << 10
        let engine = try Engine.open(directory: directory, options: options)
        let value = [UInt8](repeating: 0x76, count: 100)
        for index in 0..<10_000 { try await engine.put(bytes("key-\(index)"), value) }

        var segmentsWithReserve = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name != "LOCK" {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory),
                  !isDirectory.boolValue else { continue }
            let contents = try PosixFileSystem().readFile(directory + "/" + name)
            try PosixFileSystem().openForAppending(copy + "/" + name).append(contents[...])
            if LogFormat.segmentNumber(fromName: name) != nil, contents.last == 0 { segmentsWithReserve += 1 }
        }
        #expect(segmentsWithReserve > 0, "the live segments run on in zeros")

        let recovered = try Engine.open(directory: copy, options: options)
        #expect(recovered.recoveryReport.entriesReplayed == 10_000)
        #expect(recovered.recoveryReport.tornTailBytes == 0)
        #expect(recovered.recoveryReport.droppedRanges.isEmpty)
        for index in stride(from: 0, to: 10_000, by: 97) { #expect(try recovered.get(bytes("key-\(index)"))?.value == value) }
        try recovered.close()
        try engine.close()
    }
}
