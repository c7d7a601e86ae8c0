import IdemServer

#if canImport(CJemalloc)
import CJemalloc

/// The server runs on jemalloc, as Redis does. Why: the event loops
/// allocate and free small objects in bursts (a batch of commands, a group
/// commit's waiters), which overflow glibc's per-thread caches into its
/// slow paths and fragment its arenas; jemalloc's size-class slabs keep
/// the resident size of a full memtable about a fifth lower and the
/// per-request CPU lower (BENCHMARKS.md). The engine returns freed memory
/// through jemalloc's purge when it finds jemalloc (`MemoryRelease`).
enum Allocator {
    /// "jemalloc-<version>", as Redis's `mem_allocator` spells it.
    static var name: String {
        var version: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return "jemalloc" }
        // "5.3.0-0-g54eaed1d…": the release, without git's suffix.
        return "jemalloc-" + String(cString: version).prefix { $0 != "-" }
    }

    /// Starts jemalloc's background threads, which hand freed pages back
    /// to the OS as they age (10 s by default) whether or not anything
    /// else runs; returns whether they run.
    ///
    /// Why: without them jemalloc purges an arena only when some thread
    /// allocates or frees in it. A flushed memtable, a compaction's buffers
    /// or a burst of replies is freed on whichever thread let go of it
    /// last, often after the flush's own purge; once the load stops, no
    /// thread touches those arenas again and the pages stay resident for
    /// good — ~90 MB of a 5M-key load's 180 MB (BENCHMARKS.md, session 16).
    /// Redis starts the same threads (`jemalloc-bg-thread yes`).
    ///
    /// One thread serves every arena: purging is a few `madvise` calls a
    /// second at most, and jemalloc would otherwise start one per core
    /// beside the event loops.
    static func startBackgroundPurge() -> Bool {
        var threads = 1
        _ = mallctl("max_background_threads", nil, nil, &threads, MemoryLayout<Int>.size)
        var enable = true
        return mallctl("background_thread", nil, nil, &enable, MemoryLayout<Bool>.size) == 0
    }

    /// Fresh totals over every arena (jemalloc refreshes them on a new `epoch`).
    static func statistics() -> AllocatorReport.Statistics? {
        var next: UInt64 = 1
        guard mallctl("epoch", nil, nil, &next, MemoryLayout<UInt64>.size) == 0 else { return nil }
        func read(_ name: String) -> Int? {
            var value = 0
            var size = MemoryLayout<Int>.size
            return mallctl(name, &value, &size, nil, 0) == 0 ? value : nil
        }
        guard let allocated = read("stats.allocated"), let active = read("stats.active"),
              let resident = read("stats.resident") else { return nil }
        return AllocatorReport.Statistics(allocated: allocated, active: active, resident: resident)
    }

    /// The report `INFO memory` shows, with the background threads started
    /// when `backgroundPurge` asks for them.
    static func report(backgroundPurge: Bool) -> AllocatorReport {
        let purging = backgroundPurge && startBackgroundPurge()
        return AllocatorReport(name: name, backgroundPurge: purging, statistics: { statistics() })
    }
}
#else
enum Allocator {
    static var name: String { "libc" }

    static func report(backgroundPurge: Bool) -> AllocatorReport? { nil }
}
#endif
