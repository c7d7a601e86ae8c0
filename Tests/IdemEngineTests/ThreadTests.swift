import Foundation
import Synchronization
import Testing
@testable import IdemEngine

/// The engine's own threads carry their names (for `top -H`, `perf`, a
/// core dump), and background work runs below the embedder's threads.
@Suite struct ThreadTests {
    #if os(Linux)
    /// The calling thread's name and nice value, as the kernel reports them.
    static func describeThisThread() -> (name: String, nice: Int) {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return (name.trimmingCharacters(in: .newlines), niceValue(statPath: "/proc/thread-self/stat"))
    }

    /// Field 19 of a stat line; the command name before it may hold spaces,
    /// so fields are counted from its closing parenthesis.
    static func niceValue(statPath: String) -> Int {
        guard let stat = try? String(contentsOfFile: statPath, encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return .min }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return Int(fields[16]) ?? .min  // fields[0] is field 3 (the state)
    }

    @Test func spawnedThreadsAreNamedAndBackgroundOnesRunAtNiceTen() {
        let seen = Mutex<[String: Int]>([:])
        let done = DispatchSemaphore(value: 0)
        for (name, priority) in [("idem-test-normal-thread", ThreadPriority.normal), ("idem-test-bg", .background)] {
            spawnThread(name: name, priority: priority) {
                let (name, nice) = Self.describeThisThread()
                seen.withLock { $0[name] = nice }
                done.signal()
            }
        }
        done.wait()
        done.wait()
        // Linux keeps 15 bytes of a name: the long one is cut, not refused.
        #expect(seen.withLock { $0 } == ["idem-test-norma": 0, "idem-test-bg": 10])
    }

    @Test func theMaintenanceThreadRunsInTheBackground() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let engine = try Engine.open(directory: directory, options: EngineOptions(durability: .never))
        defer { try? engine.close() }
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        let maintenance = tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) == "idem-maintenanc\n"
        }
        #expect(!maintenance.isEmpty)
        for task in maintenance {
            #expect(Self.niceValue(statPath: "/proc/self/task/\(task)/stat") == 10)
        }
    }
    #endif
}
