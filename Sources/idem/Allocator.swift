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
    /// "jemalloc <version>", for the start-up log and INFO.
    static var description: String {
        var version: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return "jemalloc" }
        return "jemalloc " + String(cString: version)
    }
}
#else
enum Allocator {
    static var description: String { "libc" }
}
#endif
