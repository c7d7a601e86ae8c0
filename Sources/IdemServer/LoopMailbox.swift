import RESP
import Synchronization

/// Replies completed on other threads (the commit thread after a group
/// commit, the other event loop's log write, the blocking pool), handed to
/// one event loop in batches: a burst of completions costs that loop one
/// task and one wake-up, not one per reply.
///
/// Invariant: a delivery posted before a drain runs in that drain or the
/// one it schedules — `drainScheduled` is true exactly while a drain task
/// is queued and has not yet taken the deliveries.
final class LoopMailbox: Sendable {
    typealias Delivery = (body: @Sendable (RESPValue) -> Void, value: RESPValue)

    let loop: ServerLoop
    private let state = Mutex<(deliveries: [Delivery], drainScheduled: Bool)>(([], false))

    init(loop: ServerLoop) {
        self.loop = loop
    }

    /// Runs `body(value)` on the loop: at once when called from it, else
    /// in the next drain.
    func deliver(_ value: RESPValue, to body: @escaping @Sendable (RESPValue) -> Void) {
        if loop.inLoop { return body(value) }
        let schedule = state.withLock { state in
            state.deliveries.append((body, value))
            defer { state.drainScheduled = true }
            return !state.drainScheduled
        }
        if schedule { loop.execute { self.drain() } }
    }

    private func drain() {
        let deliveries = state.withLock { state in
            state.drainScheduled = false
            defer { state.deliveries.removeAll(keepingCapacity: true) }
            return state.deliveries
        }
        for delivery in deliveries { delivery.body(delivery.value) }
    }
}
