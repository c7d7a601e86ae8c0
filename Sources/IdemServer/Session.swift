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

    init(info: ClientInfo, user: User?) {
        self.info = info
        self.user = user
        info.fields.withLock { $0.user = user?.name ?? "default" }
    }

    var namespace: [UInt8] { user?.namespace ?? [] }
}
