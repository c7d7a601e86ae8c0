import RESP
import Synchronization

/// What `CLIENT LIST` shows about a connection. Written by the
/// connection's event loop, read by whoever lists clients.
final class ClientInfo: Sendable {
    let id: UInt64
    let remoteAddress: String
    let localAddress: String
    let connectedAt: Int64

    /// Fields that change rarely (names, protocol), behind a lock.
    struct Fields: Sendable {
        var name = ""
        var user = "default"
        var protocolVersion = RESPVersion.resp2
        var libraryName = ""
        var libraryVersion = ""
    }

    let fields: Mutex<Fields>
    /// Updated on every command, so lock-free: when (ms) and which
    /// (`CommandTable.names` index, -1 none yet).
    let lastActivity: Atomic<Int64>
    let lastCommand = Atomic<Int>(-1)

    init(id: UInt64, remoteAddress: String, localAddress: String, connectedAt: Int64) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.localAddress = localAddress
        self.connectedAt = connectedAt
        self.fields = Mutex(Fields())
        self.lastActivity = Atomic(connectedAt)
    }

    func noteCommand(_ index: Int, at now: Int64) {
        lastCommand.store(index, ordering: .relaxed)
        lastActivity.store(now, ordering: .relaxed)
    }

    /// One `CLIENT LIST` line (Redis's field names, those that apply).
    func listLine(now: Int64) -> String {
        let current = fields.withLock { $0 }
        let age = max(0, now - connectedAt) / 1000
        let idle = max(0, now - lastActivity.load(ordering: .relaxed)) / 1000
        let commandIndex = lastCommand.load(ordering: .relaxed)
        let command = CommandTable.names.indices.contains(commandIndex) ? CommandTable.names[commandIndex] : "NULL"
        return "id=\(id) addr=\(remoteAddress) laddr=\(localAddress) fd=-1 name=\(current.name) age=\(age) idle=\(idle) "
            + "flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 cmd=\(command) user=\(current.user) redir=-1 "
            + "resp=\(current.protocolVersion.rawValue) lib-name=\(current.libraryName) lib-ver=\(current.libraryVersion)"
    }
}

/// The connected clients: enforces `maxclients`, lists them, and drains
/// them at shutdown.
final class ClientRegistry: Sendable {
    private struct Entry: Sendable {
        var info: ClientInfo
        var handle: ClientHandle
    }

    private let maxClients: Int
    private let entries = Mutex<[UInt64: Entry]>([:])
    private let nextID = Atomic<UInt64>(1)

    init(maxClients: Int) {
        self.maxClients = maxClients
    }

    func makeID() -> UInt64 { nextID.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// False when the server is full (the caller refuses the client).
    func register(_ info: ClientInfo, handle: ClientHandle) -> Bool {
        entries.withLock { entries in
            guard entries.count < maxClients else { return false }
            entries[info.id] = Entry(info: info, handle: handle)
            return true
        }
    }

    func unregister(_ id: UInt64) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    var count: Int { entries.withLock { $0.count } }

    func list() -> [ClientInfo] {
        entries.withLock { $0.values.map(\.info) }.sorted { $0.id < $1.id }
    }

    var handles: [ClientHandle] { entries.withLock { $0.values.map(\.handle) } }
}
