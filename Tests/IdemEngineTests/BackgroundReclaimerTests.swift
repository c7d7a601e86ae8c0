import Foundation
import Synchronization
import Testing
@testable import IdemEngine

/// Closing the last descriptor of an unlinked file frees its blocks (a
/// device trim on a `discard` mount), so the engine hands such closes —
/// and the freeing of dropped tables — to `BackgroundReclaimer`.
@Suite struct BackgroundReclaimerTests {
    @Test func aHandedOverDescriptorIsClosedOnceTheReclaimerIsIdle() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let (readEnd, writeEnd) = (ends[0], ends[1])
        defer { close(readEnd) }
        #expect(fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK) == 0)
        var byte: UInt8 = 0
        #expect(read(readEnd, &byte, 1) == -1 && errno == EAGAIN, "the write end is open")
        BackgroundReclaimer.shared.close(writeEnd)
        BackgroundReclaimer.shared.waitUntilIdle()
        // End of file: no descriptor of the write end is left, whatever
        // number the kernel hands out next.
        #expect(read(readEnd, &byte, 1) == 0)
    }

    final class Tracked: Sendable {
        let log: Log
        let caller: pthread_t
        init(log: Log) {
            self.log = log
            caller = pthread_self()
        }
        deinit { log.record(onCaller: pthread_equal(caller, pthread_self()) != 0) }
    }

    final class Log: Sendable {
        private let state = Mutex<(freed: Int, onCaller: Int)>((0, 0))
        func record(onCaller: Bool) { state.withLock { $0.freed += 1; if onCaller { $0.onCaller += 1 } } }
        var counts: (freed: Int, onCaller: Int) { state.withLock { $0 } }
    }

    @Test func aReleasedLastReferenceIsFreedOnTheReclaimersThread() {
        let log = Log()
        BackgroundReclaimer.shared.release([Tracked(log: log), Tracked(log: log)])
        BackgroundReclaimer.shared.waitUntilIdle()
        #expect(log.counts.freed == 2)
        #expect(log.counts.onCaller == 0)
    }

    /// A release that hands over more work as it runs (a table closing
    /// its file): waiting for idleness waits for that too.
    final class Chained: Sendable {
        let log: Log
        init(log: Log) { self.log = log }
        deinit {
            // The nested job takes a while, so a wait that returned early
            // would find it unfinished.
            BackgroundReclaimer.shared.release(Slow(log: log))
        }
    }

    final class Slow: Sendable {
        let log: Log
        init(log: Log) { self.log = log }
        deinit {
            usleep(50_000)
            log.record(onCaller: false)
        }
    }

    @Test func waitingForIdlenessCoversWorkTheReleasesHandOver() {
        let log = Log()
        BackgroundReclaimer.shared.release(Chained(log: log))
        BackgroundReclaimer.shared.waitUntilIdle()
        #expect(log.counts.freed == 1)
    }

    /// The engine end to end, on the real file system: once a dropped
    /// partition's tables are reclaimed, no descriptor of a deleted file in
    /// the directory is left open (`/proc/self/fd` names them "(deleted)").
    @Test func droppedTablesLeaveNoOpenDescriptorOnceReclaimed() async throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = ManualClock()
        var options = EngineOptions(durability: .never)
        options.backgroundMaintenance = false
        options.clock = clock
        let hour: Int64 = 3_600_000
        let engine = try Engine.open(directory: directory, options: options)
        let now = clock.nowMilliseconds()
        for index in 0..<2_000 {
            try await engine.put(bytes("k\(index)"), bytes("v\(index)"), expiresAt: now + (index % 2 == 0 ? 1 : 5) * hour)
        }
        try await engine.flush()
        // Read from both tables, so both are open and cached.
        #expect(try engine.get(bytes("k0"))?.value == bytes("v0"))
        #expect(try engine.get(bytes("k1"))?.value == bytes("v1"))
        clock.advance(byMilliseconds: 2 * hour)
        let report = try engine.runMaintenance()
        #expect(report.filesDropped == 1)
        engine.waitForReclaimedFiles()
        #expect(Self.deletedFilesHeldOpen(under: directory) == [])
        #expect(try engine.get(bytes("k0")) == nil)
        #expect(try engine.get(bytes("k1"))?.value == bytes("v1"))
        try engine.close()
    }

    static func deletedFilesHeldOpen(under directory: String) -> [String] {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap { name in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + name),
                  target.hasPrefix(directory), target.hasSuffix(" (deleted)") else { return nil }
            return target
        }
    }
}
