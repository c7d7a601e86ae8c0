import NIOCore
import Synchronization

/// One value per event loop, made on first use (a loop's metrics shard, its
/// reply mailbox). Looked up once per connection, not per command.
final class PerEventLoop<Value: Sendable>: Sendable {
    private let values = Mutex<[ObjectIdentifier: Value]>([:])
    private let make: @Sendable (any EventLoop) -> Value

    init(make: @escaping @Sendable (any EventLoop) -> Value) {
        self.make = make
    }

    func value(for eventLoop: any EventLoop) -> Value {
        values.withLock { values in
            let key = ObjectIdentifier(eventLoop as AnyObject)
            if let value = values[key] { return value }
            let value = make(eventLoop)
            values[key] = value
            return value
        }
    }

    /// Every value made so far.
    var all: [Value] { values.withLock { Array($0.values) } }
}
