#if canImport(Glibc)
import Glibc
#endif

/// Hands memory freed by a flushed memtable back to the OS.
///
/// Why: a memtable is tens of megabytes of small allocations, made by the
/// event loops and freed, all at once, after its flush. glibc keeps such
/// memory in its arenas for reuse, so the process's resident size would
/// stay at its high-water mark; `malloc_trim` returns the free pages.
/// Looked up at run time (glibc declares it in `malloc.h`, which the Glibc
/// module does not import); elsewhere this does nothing.
enum MemoryRelease {
    private typealias Trim = @convention(c) (Int) -> Int32

    private static let trim: Trim? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: Trim.self)
        #else
        return nil
        #endif
    }()

    static func returnFreedMemory() {
        _ = trim?(0)
    }
}
