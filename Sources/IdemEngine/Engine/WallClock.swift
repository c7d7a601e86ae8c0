#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Wall-clock time in milliseconds since the Unix epoch: what expiry times
/// are compared against. Injected so tests move time instead of sleeping.
public protocol WallClock: Sendable {
    func nowMilliseconds() -> Int64
}

/// The operating system's real-time clock.
public struct SystemClock: WallClock {
    public init() {}

    public func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}

/// A clock that moves only when told to.
public final class ManualClock: WallClock {
    private let current: Atomic<Int64>

    public init(milliseconds: Int64 = 1_700_000_000_000) {
        current = Atomic(milliseconds)
    }

    public func nowMilliseconds() -> Int64 {
        current.load(ordering: .acquiring)
    }

    public func advance(byMilliseconds delta: Int64) {
        current.add(delta, ordering: .releasing)
    }

    public func set(milliseconds: Int64) {
        current.store(milliseconds, ordering: .releasing)
    }
}
