import Foundation
import Testing
@testable import IdemEngine

/// `Engine.get(ifCached:)` answers without waiting for the disk: from the
/// memtables and the block cache, and from table blocks the OS page cache
/// holds (read with `preadv2(RWF_NOWAIT)`) — but says so when a block
/// would have to come from the disk.
@Suite struct PageCacheReadTests {
    @Test func tableBlocksInThePageCacheAreReadWithoutADiskReadAndOthersAreNot() async throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = EngineOptions(durability: .never)
        options.backgroundMaintenance = false
        options.blockCacheSize = 0
        options.hotBlockSize = 1024
        let engine = try Engine.open(directory: directory, options: options)
        let value = [UInt8](repeating: 0x61, count: 64)
        for index in 0..<2_000 { try await engine.put(bytes("key\(100_000 + index)"), value) }
        try await engine.flush()
        #expect(engine.statistics.tables == 1)

        // Just written and synced: the table's pages are in the page cache.
        guard case .value(let found) = try engine.get(ifCached: bytes("key100000")) else {
            Issue.record("a block in the page cache needed a disk read")
            return
        }
        #expect(found?.value == value)

        // Out of the page cache: the read must be left to a thread that may block.
        let table = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".sst") })
        let fd = open(directory + "/" + table, O_RDONLY)
        #expect(fd >= 0)
        #expect(posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED)) == 0)
        close(fd)
        // (tmpfs keeps its pages whatever the advice: nothing to observe there.)
        let firstByte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { firstByte.deallocate() }
        let dropped = try !PosixFileSystem().openForReading(directory + "/" + table).readIfResident(at: 0, into: firstByte)
        if dropped {
            #expect(try engine.get(ifCached: bytes("key101999")) == .needsDiskRead)
        }
        #expect(try engine.get(bytes("key101999"))?.value == value, "the blocking read finds it")
        try engine.close()
    }
}
