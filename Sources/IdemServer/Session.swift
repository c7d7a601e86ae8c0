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
        didSet {
            role = user?.role
            namespace = user?.namespace ?? []
            info.fields.withLock { $0.user = user?.name ?? "default" }
        }
    }
    /// `user`'s role (nil until authenticated) and namespace, kept beside
    /// it because every command reads them: reading them through `user`
    /// copies the whole user, retaining and releasing each of its fields.
    private(set) var role: Role?
    private(set) var namespace: [UInt8]
    var name: [UInt8] = []
    /// Where this connection's commands are counted: its event loop's
    /// shard (changes when the connection moves to another loop).
    var metrics: MetricsShard

    init(info: ClientInfo, user: User?, metrics: MetricsShard) {
        self.info = info
        self.user = user
        self.role = user?.role
        self.namespace = user?.namespace ?? []
        self.metrics = metrics
        info.fields.withLock { $0.user = user?.name ?? "default" }
    }
}
