#if canImport(Glibc)
import Glibc
#endif

/// Hands memory freed by a flushed memtable back to the OS.
///
/// Why: a memtable is tens of megabytes of small allocations, made by the
/// event loops and freed, all at once, after its flush. An allocator keeps
/// such memory for reuse, so the process's resident size would stay at its
/// high-water mark. Under jemalloc (the server links it) every arena is
/// purged; under glibc `malloc_trim` returns the free pages. Both are
/// looked up at run time, so the engine depends on neither and an embedder
/// keeps whatever allocator it has; elsewhere this does nothing.
enum MemoryRelease {
    private typealias Trim = @convention(c) (Int) -> Int32
    private typealias Mallctl = @convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?,
                                                UnsafeMutablePointer<Int>?, UnsafeMutableRawPointer?, Int) -> Int32

    private enum Release {
        case jemalloc(Mallctl)
        case glibc(Trim)
        case none
    }

    private static let release: Release = {
        #if canImport(Glibc)
        let process = UnsafeMutableRawPointer(bitPattern: 0)
        if let symbol = dlsym(process, "mallctl") { return .jemalloc(unsafeBitCast(symbol, to: Mallctl.self)) }
        if let symbol = dlsym(process, "malloc_trim") { return .glibc(unsafeBitCast(symbol, to: Trim.self)) }
        #endif
        return .none
    }()

    /// jemalloc's `MALLCTL_ARENAS_ALL`: the pseudo-arena meaning "every arena".
    private static let allArenasPurge = "arena.4096.purge"

    static func returnFreedMemory() {
        switch release {
        case .jemalloc(let mallctl): _ = mallctl(allArenasPurge, nil, nil, nil, 0)
        case .glibc(let trim): _ = trim(0)
        case .none: break
        }
    }
}
