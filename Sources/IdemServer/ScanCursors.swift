import Synchronization

/// SCAN cursors. Redis clients treat a cursor as an unsigned integer (and
/// redis-cli parses it as one), but the engine resumes a scan from a key:
/// so the server hands out numbers and remembers the key each one resumes
/// from, for the most recent `capacity` cursors. An older cursor is
/// refused with `ERR invalid cursor` rather than silently restarting.
///
/// Invariant: 0 is never handed out (it means "start" and "done").
final class ScanCursors: Sendable {
    struct Position: Sendable, Equatable {
        var namespace: [UInt8]
        /// The first engine key not yet returned.
        var resumeKey: [UInt8]
    }

    private struct State {
        var next: UInt64
        var positions: [UInt64: Position] = [:]
        var order: [UInt64] = []
        var orderStart = 0
    }

    private let capacity: Int
    private let state: Mutex<State>

    init(capacity: Int = 65_536) {
        self.capacity = capacity
        // Start somewhere arbitrary so cursors of two server runs rarely coincide.
        state = Mutex(State(next: UInt64.random(in: 1...(1 << 40))))
    }

    func save(_ position: Position) -> UInt64 {
        state.withLock { state in
            let cursor = state.next
            state.next = state.next == UInt64.max ? 1 : state.next + 1
            state.positions[cursor] = position
            state.order.append(cursor)
            while state.order.count - state.orderStart > capacity {
                state.positions[state.order[state.orderStart]] = nil
                state.orderStart += 1
            }
            if state.orderStart > capacity {
                state.order.removeFirst(state.orderStart)
                state.orderStart = 0
            }
            return cursor
        }
    }

    /// The position `cursor` resumes from, if it is still remembered and
    /// belongs to `namespace`.
    func position(_ cursor: UInt64, namespace: [UInt8]) -> Position? {
        state.withLock { state in
            guard let position = state.positions[cursor], position.namespace == namespace else { return nil }
            return position
        }
    }
}
