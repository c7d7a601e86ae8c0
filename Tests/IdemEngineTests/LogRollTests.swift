import Testing
@testable import IdemEngine

/// WAL rolls: a roll does no sync on the commit path (the next segment is
/// prepared ahead, the segment left behind is synced later), and recovery
/// keeps a prefix of the log when a rolled-away segment lost its tail.
@Suite struct LogRollTests {
    /// 16-byte values: each record is 41 bytes, so a 120-byte segment
    /// limit holds two records after the 32-byte header.
    static let value = String(repeating: "v", count: 8)

    @Test func aRollIntoAPreparedSegmentSyncsNothing() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.never, segmentSize: 120)
        try await engine.put("a", Self.value)
        try engine.runMaintenance() // prepares the next segment
        let syncsBefore = store.fileSystem.syncCount
        try await engine.put("b", Self.value)
        try await engine.put("c", Self.value) // rolls
        #expect(try store.segmentPaths().count == 2)
        #expect(store.fileSystem.syncCount == syncsBefore, "the roll synced on the commit path")
        try engine.close()
        #expect(try store.open(.never).get("c")?.value == bytes(Self.value))
    }

    @Test func aRolledAwaySegmentThatLostItsTailEndsTheLogThere() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.never, segmentSize: 120)
        try await engine.put("a1", Self.value)
        let first = try store.segmentPaths()[0]
        try store.fileSystem.openForAppending(first).sync() // the OS wrote back "a1" only
        try await engine.put("a2", Self.value)
        try await engine.put("b", Self.value) // rolls: the link records segment 1 with "a2"
        let second = try store.segmentPaths()[1]
        try store.fileSystem.openForAppending(second).sync() // ... and all of segment 2
        let crashed = store.crashed()
        let reopened = try crashed.open(.never)
        #expect(try reopened.get("a1")?.value == bytes(Self.value))
        #expect(try reopened.get("a2") == nil)
        #expect(try reopened.get("b") == nil, "a write that followed a lost one survived: not a prefix")
        #expect(reopened.recoveryReport.tornTailBytes > 0)
        #expect(!crashed.fileSystem.fileExists(second))
        try reopened.close()
    }

    @Test func aWholeLostSegmentEndsTheLogBeforeIt() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.never, segmentSize: 90)
        for key in ["a", "b", "c"] { try await engine.put(bytes(key), bytes(Self.value)) } // one segment each
        let paths = try store.segmentPaths()
        #expect(paths.count == 3)
        // Segments 1 and 3 reached the disk; segment 2 kept only its header.
        for path in [paths[0], paths[2]] { try store.fileSystem.openForAppending(path).sync() }
        let reopened = try store.crashed().open(.never)
        #expect(try reopened.get("a") != nil)
        #expect(try reopened.get("b") == nil)
        #expect(try reopened.get("c") == nil)
        try reopened.close()
    }

    @Test(arguments: [SimulatedFileSystem.CrashMode.dropUnsynced, .garbleUnsynced(seed: 7)])
    func acknowledgedWritesSurviveRollsUnderAlways(crash: SimulatedFileSystem.CrashMode) async throws {
        let store = SimulatedStore()
        let engine = try store.open(.always, segmentSize: 120)
        for index in 0..<12 { try await engine.put(bytes("k\(index)"), bytes(Self.value)) }
        #expect(try store.segmentPaths().count >= 6)
        let reopened = try store.crashed(crash).open(.always)
        for index in 0..<12 { #expect(try reopened.get(bytes("k\(index)")) != nil, "k\(index) lost") }
        try reopened.close()
    }

    @Test func aLinkThatContradictsItsPredecessorIsCorruption() async throws {
        let store = SimulatedStore()
        let engine = try store.open(.never, segmentSize: 120)
        for key in ["a", "b", "c"] { try await engine.put(bytes(key), bytes(Self.value)) }
        try engine.close()
        // Grow segment 1 past the length segment 2's link records.
        let first = try store.segmentPaths()[0]
        let number = try #require(LogFormat.segmentNumber(fromName: String(first.split(separator: "/").last!)))
        var extra = LogBuffer()
        extra.appendRecord(type: .writeBatch) {
            BatchCodec.encode(WriteBatch(.init(kind: .value, key: [9], value: [9], expiresAt: nil)), firstSequence: 99, into: &$0)
        }
        let writer = try store.fileSystem.openForAppending(first)
        // Right after the last record (the segment was rolled away from,
        // never closed: its reserve of zeros follows).
        try writer.truncate(to: Int64(store.validEnd(ofSegment: first)))
        let offset = UInt64(writer.size)
        let record = extra.records[0]
        extra.bytes.storeFixed32(LogFormat.recordChecksum(payloadCRC: record.payloadCRC, type: .writeBatch,
                                                          length: UInt32(record.payloadLength), segment: number, offset: offset),
                                 at: 0)
        extra.bytes.storeFixed32(UInt32(record.payloadLength), at: 4)
        extra.bytes[8] = LogFormat.RecordType.writeBatch.rawValue
        try writer.append(extra.bytes[...])
        try writer.sync()
        let grown = try store.fileSystem.readFile(first)
        #expect(grown.withUnsafeBytes { LogSegmentScan(bytes: $0, segmentNumber: number, salvage: false).damage.isEmpty },
                "the added record is valid where it stands")
        #expect(throws: EngineError.self) { _ = try store.open(.never) }
    }
}
