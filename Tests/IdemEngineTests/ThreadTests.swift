import Foundation
import Synchronization
import Testing
@testable import IdemEngine

/// The engine's own threads carry their names (for `top -H`, `perf`, a
/// core dump), and background work runs below the embedder's threads: at
/// SCHED_IDLE while nothing waits for it, at nice 10 while a writer does.
@Suite struct ThreadTests {
    #if os(Linux)
    /// What the kernel reports of one thread.
    struct Scheduling: Equatable {
        var nice: Int
        /// SCHED_IDLE rather than SCHED_OTHER.
        var idle: Bool
    }

    static func describeThisThread() -> (name: String, scheduling: Scheduling) {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return (name.trimmingCharacters(in: .newlines), scheduling(statPath: "/proc/thread-self/stat"))
    }

    static func scheduling(ofThread thread: Int32) -> Scheduling {
        scheduling(statPath: "/proc/self/task/\(thread)/stat")
    }

    /// Fields 19 (nice) and 41 (policy: 0 SCHED_OTHER, 5 SCHED_IDLE) of a
    /// stat line; the command name before them may hold spaces, so fields
    /// are counted from its closing parenthesis.
    static func scheduling(statPath: String) -> Scheduling {
        guard let stat = try? String(contentsOfFile: statPath, encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return Scheduling(nice: .min, idle: false) }
        let fields = stat[stat.index(after: close)...].split(separator: " ")  // fields[0] is field 3
        return Scheduling(nice: Int(fields[16]) ?? .min, idle: fields[38] == "5")
    }

    static let atIdle = Scheduling(nice: 10, idle: true)
    static let atNiceTen = Scheduling(nice: 10, idle: false)
    /// Where the process may not raise a thread back out of SCHED_IDLE,
    /// the engine does not put one there.
    static let resting = ThreadPriority.idleIsRevocable ? atIdle : atNiceTen

    /// Polls `condition` every millisecond for up to ten seconds.
    static func wait(for what: Comment, _ condition: () -> Bool) {
        for _ in 0..<10_000 where !condition() { usleep(1000) }
        #expect(condition(), what)
    }

    static func maintenanceThread(of engine: Engine) -> Int32 {
        wait(for: "the maintenance thread attaches") { engine.maintenance.priority.threadID != nil }
        return engine.maintenance.priority.threadID ?? -1
    }

    /// An engine whose memtables seal every 4 KB, `maxSealedMemtables` of
    /// them allowed to wait, and its maintenance thread.
    static func openWithSmallMemtables(maxSealedMemtables: Int) throws -> (Engine, String, Int32) {
        let directory = makeTemporaryDirectory()
        var options = EngineOptions(durability: .never)
        options.memtableSize = 4096
        options.maxSealedMemtables = maxSealedMemtables
        options.maintenanceInterval = 5
        let engine = try Engine.open(directory: directory, options: options)
        return (engine, directory, maintenanceThread(of: engine))
    }

    @Test func spawnedThreadsAreNamedAndRunAtTheirPriority() {
        let seen = Mutex<[String: Scheduling]>([:])
        let done = DispatchSemaphore(value: 0)
        let threads: [(String, ThreadPriority)] = [("idem-test-normal-thread", .normal), ("idem-test-bg", .background),
                                                   ("idem-test-idle", .idle)]
        for (name, priority) in threads {
            spawnThread(name: name, priority: priority) {
                let (name, scheduling) = Self.describeThisThread()
                seen.withLock { $0[name] = scheduling }
                done.signal()
            }
        }
        for _ in threads { done.wait() }
        // Linux keeps 15 bytes of a name: the long one is cut, not refused.
        let expected = ["idem-test-norma": Scheduling(nice: 0, idle: false), "idem-test-bg": Self.atNiceTen,
                        "idem-test-idle": Self.atIdle]
        #expect(seen.withLock { $0 } == expected)
    }

    @Test func theMaintenanceThreadRestsAtIdlePriorityWhereItCanBeRaised() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let engine = try Engine.open(directory: directory, options: EngineOptions(durability: .never))
        defer { try? engine.close() }
        let thread = Self.maintenanceThread(of: engine)
        #expect((try? String(contentsOfFile: "/proc/self/task/\(thread)/comm", encoding: .utf8)) == "idem-maintenanc\n")
        #expect(Self.scheduling(ofThread: thread) == Self.resting)
        #expect(engine.statistics.maintenancePriority == (ThreadPriority.idleIsRevocable ? .idle : .low))
    }

    @Test func maintenanceAtLowPriorityRunsAtNiceTen() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = EngineOptions(durability: .never)
        options.maintenancePriority = .low
        let engine = try Engine.open(directory: directory, options: options)
        defer { try? engine.close() }
        #expect(Self.scheduling(ofThread: Self.maintenanceThread(of: engine)) == Self.atNiceTen)
        #expect(engine.statistics.maintenancePriority == .low)
        engine.maintenance.flushesFallBehind()
        #expect(engine.statistics.maintenanceBoosts == 0, "nothing to raise")
    }

    /// Sealed memtables waiting on a maintenance thread at SCHED_IDLE (no
    /// CPU on a busy machine) raise it to nice 10 until they are flushed:
    /// a second one sealed before the first is flushed, or a writer
    /// stalled on them (here the limit is one, so the stall comes first).
    @Test(.enabled(if: ThreadPriority.idleIsRevocable, "the process may raise a thread out of SCHED_IDLE"))
    func aStalledWriterRaisesTheMaintenanceThreadUntilTheFlushesAreDone() throws {
        let (engine, directory, thread) = try Self.openWithSmallMemtables(maxSealedMemtables: 1)
        defer {
            try? engine.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        #expect(Self.scheduling(ofThread: thread) == Self.atIdle)

        let writerFinished = DispatchSemaphore(value: 0)
        try engine.maintenance.withWorkPaused { _ in
            // Nothing flushes while this holds: the writer fills the one
            // sealed memtable allowed and stalls on the next.
            spawnThread(name: "idem-test-writer") {
                for index in 0..<400 {
                    var batch = WriteBatch()
                    batch.put(Array("key-\(index)".utf8), [UInt8](repeating: 7, count: 40))
                    engine.write(batch) { _ in }
                }
                writerFinished.signal()
            }
            Self.wait(for: "the writer stalls") { engine.statistics.writeStalls == 1 }
            #expect(Self.scheduling(ofThread: thread) == Self.atNiceTen)
            #expect(engine.statistics.maintenanceBoosts == 1)
        }
        writerFinished.wait()
        Self.wait(for: "the backlog is flushed") { !engine.maintenance.priority.isBoosted }
        #expect(Self.scheduling(ofThread: thread) == Self.atIdle)
        #expect(try engine.get(Array("key-399".utf8))?.value.count == 40)
    }

    @Test(.enabled(if: ThreadPriority.idleIsRevocable, "the process may raise a thread out of SCHED_IDLE"))
    func aSecondSealedMemtableRaisesTheMaintenanceThreadBeforeAnyWriterStalls() throws {
        let (engine, directory, thread) = try Self.openWithSmallMemtables(maxSealedMemtables: 4)
        defer {
            try? engine.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        var written = 0
        func writeUntilSealed(_ count: Int) {
            while engine.statistics.sealedMemtables < count {
                var batch = WriteBatch()
                batch.put(Array("key-\(written)".utf8), [UInt8](repeating: 7, count: 40))
                engine.write(batch) { _ in }
                written += 1
            }
        }
        try engine.maintenance.withWorkPaused { _ in
            writeUntilSealed(1)
            #expect(Self.scheduling(ofThread: thread) == Self.atIdle, "one sealed memtable is a flush keeping up")
            writeUntilSealed(2)
            #expect(Self.scheduling(ofThread: thread) == Self.atNiceTen)
            #expect(engine.statistics.maintenanceBoosts == 1 && engine.statistics.writeStalls == 0)
        }
        Self.wait(for: "the backlog is flushed") { !engine.maintenance.priority.isBoosted }
        #expect(Self.scheduling(ofThread: thread) == Self.atIdle)
        #expect(engine.statistics.sealedMemtables == 0)
    }
    #endif
}
