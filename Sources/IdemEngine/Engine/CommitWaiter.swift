import Synchronization

/// One writer's claim on a pending group commit: completed once, by the
/// commit thread, when the group is durable (or failed). The writer either
/// awaits it or registers a callback, whichever suits its world (async
/// code, or an event loop that must not block).
@usableFromInline
final class CommitWaiter: Sendable {
    private enum State {
        case pending
        case completed(Result<Void, EngineError>)
        case awaiting(CheckedContinuation<Result<Void, EngineError>, Never>)
        case callback(@Sendable (Result<Void, EngineError>) -> Void)
    }

    private let state = Mutex(State.pending)

    func complete(_ result: Result<Void, EngineError>) {
        let previous = state.withLock { state -> State in
            let previous = state
            if case .pending = state { state = .completed(result) }
            return previous
        }
        switch previous {
        case .awaiting(let continuation): continuation.resume(returning: result)
        case .callback(let callback): callback(result)
        case .pending, .completed: break
        }
    }

    @usableFromInline
    nonisolated(nonsending) func wait() async throws(EngineError) {
        let result = await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<Void, EngineError>? in
                if case .completed(let result) = state { return result }
                state = .awaiting(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        try result.get()
    }

    /// Calls `callback` once the commit is done: at once if it already is,
    /// otherwise on the commit thread.
    @usableFromInline
    func onComplete(_ callback: @escaping @Sendable (Result<Void, EngineError>) -> Void) {
        let ready = state.withLock { state -> Result<Void, EngineError>? in
            if case .completed(let result) = state { return result }
            state = .callback(callback)
            return nil
        }
        if let ready { callback(ready) }
    }
}
