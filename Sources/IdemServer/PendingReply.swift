import RESP
import Synchronization

/// A reply that arrives later — from an engine completion (a write once
/// it is logged) or the blocking pool — handed to the connection's event
/// loop with one object per command instead of a chain of futures.
///
/// Invariant: the reply is delivered exactly once, on the event loop given
/// to `whenReady`, whichever of `complete` and `whenReady` comes first.
final class PendingReply: Sendable {
    private enum State {
        case waiting
        case done(RESPValue)
        case observed(Observer)
        case delivered
    }

    /// The observer as a struct rather than a tuple: a closure that passes
    /// through a generic (`withLock`'s result) bare, or in a tuple, is
    /// re-wrapped in a thunk each way — two allocations per reply.
    private struct Observer {
        let mailbox: LoopMailbox
        let body: @Sendable (RESPValue) -> Void
    }

    private let state = Mutex<State>(.waiting)

    /// Sets the reply (the first call wins); runs the observer at once when
    /// this is its event loop, else posts it there.
    func complete(_ value: RESPValue) {
        let observer: Observer? = state.withLock { state in
            switch state {
            case .waiting:
                state = .done(value)
                return nil
            case .observed(let observer):
                state = .delivered
                return observer
            case .done, .delivered:
                return nil
            }
        }
        guard let observer else { return }
        observer.mailbox.deliver(value, to: observer.body)
    }

    /// `body` receives the reply on the mailbox's event loop (this is
    /// called from it): at once if it is already in.
    func whenReady(on mailbox: LoopMailbox, _ body: @escaping @Sendable (RESPValue) -> Void) {
        let ready: RESPValue? = state.withLock { state in
            switch state {
            case .done(let value):
                state = .delivered
                return value
            case .waiting:
                state = .observed(Observer(mailbox: mailbox, body: body))
                return nil
            case .observed, .delivered:
                preconditionFailure("a pending reply has one observer")
            }
        }
        if let ready { body(ready) }
    }

    /// The reply as a command result: ready now if it is already in.
    var result: CommandResult {
        let ready: RESPValue? = state.withLock { state in
            guard case .done(let value) = state else { return nil }
            state = .delivered
            return value
        }
        return ready.map(CommandResult.reply) ?? .pending(self)
    }
}
