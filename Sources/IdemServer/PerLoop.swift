import Synchronization

/// One value per event loop, made on first use (a loop's metrics shard),
/// looked up once per connection, not per command.
final class PerLoop<Value: Sendable>: Sendable {
    private let values = Mutex<[ObjectIdentifier: Value]>([:])
    private let make: @Sendable (ServerLoop) -> Value

    init(make: @escaping @Sendable (ServerLoop) -> Value) {
        self.make = make
    }

    func value(for loop: ServerLoop) -> Value {
        values.withLock { values in
            let key = ObjectIdentifier(loop)
            if let value = values[key] { return value }
            let value = make(loop)
            values[key] = value
            return value
        }
    }

    /// Every value made so far.
    var all: [Value] { values.withLock { Array($0.values) } }
}
