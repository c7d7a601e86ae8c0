import Testing
@testable import IdemEngine

@Suite struct DataDirectoryTests {
    static func populated() async throws -> SimulatedStore {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions())
        let now = store.clock.nowMilliseconds()
        for index in 0..<500 {
            try await engine.put(bytes("k\(index)"), bytes("value \(index)"), expiresAt: index % 2 == 0 ? nil : now + 3_600_000)
        }
        try await engine.flush()
        try await engine.put("in-wal", "x")
        try engine.close()
        return store
    }

    @Test func healthyDirectoryChecksClean() async throws {
        let store = try await Self.populated()
        var steps: [Int] = []
        let report = try DataDirectory.check(directory: "/db", options: store.lsmOptions()) { steps.append($0.done) }
        #expect(report.isHealthy, "\(report.problems)")
        #expect(report.tablesChecked == 2 && report.entriesChecked == 500)
        #expect(report.walRecordsChecked == 1)
        #expect(steps.last == steps.max() && !steps.isEmpty)
        let summary = try DataDirectory.summary(directory: "/db", options: store.lsmOptions())
        #expect(summary.partitions.count == 2)
        #expect(summary.partitions.last?.end == nil)
        #expect(summary.partitions.flatMap(\.tables).reduce(0) { $0 + $1.entries } == 500)
    }

    @Test func corruptTableByteIsReportedWithItsFile() async throws {
        let store = try await Self.populated()
        let table = try store.tableFiles().sorted().first!
        store.fileSystem.corrupt(table, at: 20)
        let report = try DataDirectory.check(directory: "/db", options: store.lsmOptions())
        #expect(!report.isHealthy)
        #expect(report.problems.contains { $0.severity == .error && $0.file == table })
    }

    @Test func corruptWALRecordIsReported() async throws {
        let store = try await Self.populated()
        let segment = try store.segmentPaths().last!
        store.fileSystem.corrupt(segment, at: LogFormat.segmentHeaderSize + 12)
        let report = try DataDirectory.check(directory: "/db", options: store.lsmOptions())
        // The only record of the newest segment: indistinguishable from a torn write.
        #expect(report.problems.contains { $0.file == segment })
    }

    @Test func aRunningEngineIsDetected() async throws {
        let store = try await Self.populated()
        let engine = try store.openLSM(store.lsmOptions())
        #expect(throws: EngineError.self) { _ = try DataDirectory.check(directory: "/db", options: store.lsmOptions()) }
        try engine.close()
    }
}
