import RESP

/// One connection's state, owned by its event loop (never shared: the
/// fields others may read live in `info`).
final class Session {
    let info: ClientInfo
    var protocolVersion: RESPVersion = .resp2 {
        didSet { info.fields.withLock { $0.protocolVersion = protocolVersion } }
    }
    /// Nil until the connection has authenticated (when a password is required).
    var user: User? {
        didSet { info.fields.withLock { $0.user = user?.name ?? "default" } }
    }
    var name: [UInt8] = []
    /// Where this connection's commands are counted: its event loop's
    /// shard (changes when the connection moves to another loop).
    var metrics: MetricsShard

    init(info: ClientInfo, user: User?, metrics: MetricsShard) {
        self.info = info
        self.user = user
        self.metrics = metrics
        info.fields.withLock { $0.user = user?.name ?? "default" }
    }

    var namespace: [UInt8] { user?.namespace ?? [] }
}
