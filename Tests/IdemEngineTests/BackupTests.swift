import Testing
@testable import IdemEngine

/// Online backups: consistent, restorable, durable the moment they return.
@Suite struct BackupTests {
    @Test func aBackupRestoresToTheSameDataWhileWritesContinue() async throws {
        let store = SimulatedStore()
        var options = store.lsmOptions(.always, memtableSize: 64 << 10)
        options.coldAfter = 2 * 3_600_000
        let engine = try store.openLSM(options)
        let now = store.clock.nowMilliseconds()
        for index in 0..<3000 {
            try await engine.put(bytes("key:\(index)"), bytes("value \(index)"), expiresAt: index % 3 == 0 ? nil : now + 86_400_000)
        }
        try engine.runMaintenance()
        store.clock.advance(byMilliseconds: 3 * 3_600_000) // old tables move to the cold tier
        try engine.runMaintenance()
        for index in 3000..<3500 { try await engine.put(bytes("key:\(index)"), bytes("late \(index)")) } // WAL only
        try await engine.delete(bytes("key:7"))
        #expect(engine.partitions.flatMap(\.tables).contains { $0.tier == .cold })
        let expected = try engine.scan()

        let report = try engine.backup(to: "/backup")
        #expect(report.tablesLinked > 0 && report.walSegments >= 1 && report.walBytes > 0)
        // Writes after the backup do not reach it.
        try await engine.put(bytes("after"), bytes("x"))
        try engine.close()

        // The backup is durable when backup() returns: a power loss right after keeps it whole.
        let crashed = store.fileSystem.crashClone(.dropUnsynced)
        var restoredOptions = options
        restoredOptions.fileSystem = crashed
        let restored = try Engine.open(directory: "/backup", options: restoredOptions)
        let actual = try restored.scan()
        #expect(actual.count == expected.count)
        #expect(actual.map(\.key) == expected.map(\.key) && actual.map(\.value.value) == expected.map(\.value.value))
        #expect(try restored.get(bytes("after")) == nil)
        #expect(try restored.get(bytes("key:7")) == nil)
        // The restored store takes writes and reopens.
        try await restored.put(bytes("new"), bytes("y"))
        try restored.close()
        let again = try Engine.open(directory: "/backup", options: restoredOptions)
        #expect(try again.get(bytes("new"))?.value == bytes("y"))
        try again.close()
    }

    @Test func aBackupRefusesADirectoryThatHoldsFiles() async throws {
        let store = SimulatedStore()
        let engine = try store.openLSM(store.lsmOptions())
        try store.fileSystem.createDirectory("/busy")
        let file = try store.fileSystem.openForAppending("/busy/something")
        file.close()
        #expect(throws: EngineError.self) { try engine.backup(to: "/busy") }
        try engine.close()
    }
}
