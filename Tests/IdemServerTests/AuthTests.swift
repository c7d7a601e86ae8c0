import Foundation
@testable import IdemServer
import Testing

@Suite("Authentication, roles and tenant isolation")
struct AuthTests {
    static let usersFile = """
        # name  role       namespace  password hash
        alice   readwrite  payments   \(UserDirectory.hashField("alice-pw"))
        bob     readwrite  shipping   \(UserDirectory.hashField("bob-pw"))
        auditor readonly   payments   \(UserDirectory.hashField("audit-pw"))
        root    admin      -          \(UserDirectory.hashField("root-pw"))
        """

    static func withUsers(requirePassword: String? = nil, _ body: (ServerHarness) async throws -> Void) async throws {
        let path = NSTemporaryDirectory() + "idem-users-\(UUID().uuidString)"
        try usersFile.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withServer(configure: { $0.usersFile = path; $0.requirePassword = requirePassword }, body)
    }

    @Test("--requirepass: NOAUTH until AUTH; WRONGPASS; failures counted")
    func requirePassword() async throws {
        try await withServer(configure: { $0.requirePassword = "s3cret" }) { server in
            let client = try server.client()
            #expect(try client.call("GET", "k") == .error("NOAUTH Authentication required."))
            #expect(try client.call("PING") == .error("NOAUTH Authentication required."))
            #expect(try client.call("NOSUCH") == .error("NOAUTH Authentication required."))
            #expect(try client.call("AUTH", "wrong") == .error("WRONGPASS invalid username-password pair or user is disabled."))
            #expect(try client.call("AUTH", "default", "wrong") == .error("WRONGPASS invalid username-password pair or user is disabled."))
            #expect(try client.call("HELLO", "3").string?.hasPrefix("NOAUTH HELLO must be called") == true)
            #expect(try client.call("AUTH", "s3cret") == ok)
            #expect(try client.call("SET", "k", "v") == ok)
            let hello = try server.client().call("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "w1")
            guard case .map = hello else { Issue.record("HELLO AUTH gave \(hello)"); return }
            let info = try client.call("INFO", "stats").string ?? ""
            #expect(info.contains("acl_access_denied_auth:2\r\n"))
        }
    }

    @Test("no password configured: the default user is an open admin; AUTH pass says so")
    func openDefault() async throws {
        try await withServer { server in
            let client = try server.client()
            #expect(try client.call("AUTH", "pw") == .error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"))
            #expect(try client.call("FLUSHALL") == ok)
        }
    }

    @Test("each user's keys live in its namespace: invisible to GET, SCAN, DBSIZE, IDEM.* of others")
    func tenants() async throws {
        try await Self.withUsers { server in
            let alice = try server.client(), bob = try server.client()
            #expect(try alice.call("GET", "k") == .error("NOAUTH Authentication required."))
            #expect(try alice.call("AUTH", "alice", "alice-pw") == ok)
            #expect(try bob.call("AUTH", "bob", "bob-pw") == ok)
            #expect(try bob.call("AUTH", "alice", "bob-pw") == .error("WRONGPASS invalid username-password pair or user is disabled."))
            _ = try alice.call("SET", "order:1", "paid")
            _ = try alice.call("IDEM.BEGIN", "charge-1")
            #expect(try bob.call("GET", "order:1") == nilBulk)
            #expect(try bob.call("EXISTS", "order:1") == .integer(0))
            #expect(try bob.call("IDEM.GET", "charge-1") == nilBulk)
            #expect(try bob.call("DBSIZE") == .integer(0))
            #expect(try bob.call("SCAN", "0").items[1] == .array([]))
            _ = try bob.call("SET", "order:1", "shipped")
            #expect(try alice.call("GET", "order:1") == bulk("paid"))
            #expect(try alice.call("DBSIZE") == .integer(2))
            // A cursor is only good in the namespace that made it.
            _ = try alice.call("SET", "order:2", "x")
            let cursor = try alice.call("SCAN", "0", "COUNT", "1").items[0].string!
            #expect(try bob.call("SCAN", cursor) == .error("ERR invalid cursor"))
            // The default user is disabled when only a users file is given.
            #expect(try server.client().call("AUTH", "anything") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        }
    }

    @Test("roles: readonly cannot write, readwrite cannot flush, admin can")
    func roles() async throws {
        try await Self.withUsers { server in
            let auditor = try server.client(), alice = try server.client(), root = try server.client()
            _ = try auditor.call("AUTH", "auditor", "audit-pw")
            _ = try alice.call("AUTH", "alice", "alice-pw")
            _ = try root.call("AUTH", "root", "root-pw")
            _ = try alice.call("SET", "k", "v")
            #expect(try auditor.call("GET", "k") == bulk("v")) // same namespace as alice
            #expect(try auditor.call("SET", "k", "w") == .error("NOPERM User auditor has no permissions to run the 'set' command"))
            #expect(try auditor.call("IDEM.BEGIN", "x") == .error("NOPERM User auditor has no permissions to run the 'idem.begin' command"))
            #expect(try alice.call("FLUSHDB") == .error("NOPERM User alice has no permissions to run the 'flushdb' command"))
            _ = try root.call("SET", "rootkey", "v")
            #expect(try root.call("FLUSHALL") == ok)
            #expect(try alice.call("GET", "k") == nilBulk)
            #expect(try root.call("DBSIZE") == .integer(0))
        }
    }

    @Test("users file errors name the line")
    func usersFileErrors() {
        #expect(throws: UserDirectory.LoadError.malformedLine(line: 2, reason: "role must be admin, readwrite or readonly, not 'superuser'")) {
            try UserDirectory(requirePassword: nil, usersFile: "# c\nx superuser - \(UserDirectory.hashField("p"))")
        }
        #expect(throws: UserDirectory.LoadError.self) { try UserDirectory(requirePassword: nil, usersFile: "x admin - plaintext") }
        #expect(throws: UserDirectory.LoadError.duplicateUser(line: 2, name: "x")) {
            let line = "x admin - \(UserDirectory.hashField("p"))"
            return try UserDirectory(requirePassword: nil, usersFile: line + "\n" + line)
        }
    }

    @Test("protected mode refuses a public address with no password")
    func protectedMode() async throws {
        var configuration = ServerConfiguration()
        configuration.bindAddress = "0.0.0.0"
        configuration.port = 0
        configuration.directory = NSTemporaryDirectory() + "idem-protected-\(UUID().uuidString)"
        await #expect(throws: ServerStartError.self) { _ = try await IdemServer.start(configuration: configuration) }
    }
}
