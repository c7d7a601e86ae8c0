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
        defer { close(fd) }
        #expect(posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED)) == 0)
        // Checked with mincore, not with a read: even a RWF_NOWAIT read that
        // fails starts readahead. (tmpfs keeps its pages whatever the
        // advice: nothing to observe there.)
        if try residentPages(of: fd) == 0 {
            // RWF_NOWAIT means "do not wait", not "do no I/O": the kernel
            // submits readahead for the missing pages, and on a device that
            // completes I/O at submission (a VM disk backed by the host's
            // cache, a ramdisk) the pages are there by the time it looks
            // again. So either the read is refused, or it succeeded because
            // the pages came into the page cache — never a wrong answer. The
            // engine's handling of a refused read is pinned down
            // deterministically in PartitionTests, on the simulated file system.
            switch try engine.get(ifCached: bytes("key101999")) {
            case .needsDiskRead:
                break
            case .value(let found):
                #expect(found?.value == value)
                #expect(try residentPages(of: fd) > 0, "a resident read with no page in the page cache")
            }
        }
        #expect(try engine.get(bytes("key101999"))?.value == value, "the blocking read finds it")
        try engine.close()
    }
}

/// How many of the file's pages the OS page cache holds, without touching
/// them (a read would fault them in or start readahead).
private func residentPages(of fd: Int32) throws -> Int {
    var status = stat()
    #expect(fstat(fd, &status) == 0)
    let size = Int(status.st_size)
    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard let mapping = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), mapping != MAP_FAILED else {
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    defer { munmap(mapping, size) }
    var pages = [UInt8](repeating: 0, count: (size + pageSize - 1) / pageSize)
    #expect(mincore(mapping, size, &pages) == 0)
    return pages.reduce(0) { $0 + Int($1 & 1) }
}
