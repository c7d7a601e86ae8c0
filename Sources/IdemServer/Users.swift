import Crypto
import Idempotency

/// What a user may run.
public enum Role: String, Sendable, CaseIterable {
    /// Everything, including FLUSHDB / FLUSHALL.
    case admin
    /// Reads and writes in the user's namespace.
    case readwrite
    /// Reads only.
    case readonly
}

/// A user as configured: its keys live in `namespace`, invisible to every
/// other namespace.
public struct User: Sendable, Equatable {
    public var name: String
    public var role: Role
    public var namespace: [UInt8]
    /// SHA-256 of the password; nil accepts any password (the open default user).
    var passwordHash: [UInt8]?

    public init(name: String, role: Role, namespace: [UInt8], passwordHash: [UInt8]?) {
        self.name = name
        self.role = role
        self.namespace = namespace
        self.passwordHash = passwordHash
    }
}

/// The users the server knows and how a connection proves to be one.
///
/// - With neither `--requirepass` nor a users file, the `default` user is an
///   admin with no password and every connection starts authenticated as it
///   (Redis's behaviour, so existing tooling works on loopback).
/// - `--requirepass P` gives the default user the password P.
/// - A users file adds named users; when it is given without
///   `--requirepass`, the default user is disabled and every connection
///   must `AUTH user password`.
///
/// Users file: one user per line, `#` starts a comment, fields separated by
/// white space: `name role namespace sha256:<64 hex digits>` — the hash of
/// the password, never the password (`idem hash-password` prints it).
/// Namespace `-` is the default (empty) namespace.
public struct UserDirectory: Sendable {
    public enum LoadError: Error, Sendable, Equatable, CustomStringConvertible {
        case malformedLine(line: Int, reason: String)
        case duplicateUser(line: Int, name: String)

        public var description: String {
            switch self {
            case .malformedLine(let line, let reason): "users file line \(line): \(reason)"
            case .duplicateUser(let line, let name): "users file line \(line): user '\(name)' is defined twice"
            }
        }
    }

    /// Nil when the default user is disabled.
    public let defaultUser: User?
    private let users: [String: User]

    public init(requirePassword: String?, usersFile: String?) throws(LoadError) {
        var users: [String: User] = [:]
        if let usersFile {
            for (offset, rawLine) in usersFile.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
                guard !fields.isEmpty else { continue }
                let user = try Self.parse(fields, line: offset + 1)
                guard users[user.name] == nil, user.name != "default" || requirePassword == nil else {
                    throw .duplicateUser(line: offset + 1, name: user.name)
                }
                users[user.name] = user
            }
        }
        if let requirePassword {
            defaultUser = User(name: "default", role: .admin, namespace: [], passwordHash: Self.hash(requirePassword))
        } else if usersFile == nil {
            defaultUser = User(name: "default", role: .admin, namespace: [], passwordHash: nil)
        } else {
            defaultUser = users["default"]
        }
        users["default"] = defaultUser
        self.users = users
    }

    /// The user a new connection starts as, when no password is needed.
    public var initialUser: User? {
        guard let defaultUser, defaultUser.passwordHash == nil else { return nil }
        return defaultUser
    }

    /// Whether any password protects the server (for protected mode).
    public var hasPasswords: Bool { initialUser == nil }

    /// The user named `name` if `password` is theirs. Takes the same time
    /// whether the user exists or not, and compares digests in constant time.
    public func authenticate(user name: String, password: [UInt8]) -> User? {
        let offered = Self.hash(password)
        guard let user = users[name] else {
            _ = Self.constantTimeEquals(offered, offered)
            return nil
        }
        guard let expected = user.passwordHash else { return user }
        return Self.constantTimeEquals(offered, expected) ? user : nil
    }

    public static func hash(_ password: String) -> [UInt8] { hash(Array(password.utf8)) }

    public static func hash(_ password: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: password)) }

    /// The users-file form of a password's hash.
    public static func hashField(_ password: String) -> String {
        "sha256:" + hash(password).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    private static func parse(_ fields: [Substring], line: Int) throws(LoadError) -> User {
        guard fields.count == 4 else {
            throw .malformedLine(line: line, reason: "expected 4 fields (name role namespace sha256:hash), found \(fields.count)")
        }
        let name = String(fields[0])
        guard name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .malformedLine(line: line, reason: "user names are printable ASCII")
        }
        guard let role = Role(rawValue: String(fields[1]).lowercased()) else {
            throw .malformedLine(line: line, reason: "role must be admin, readwrite or readonly, not '\(fields[1])'")
        }
        let namespace = fields[2] == "-" ? [] : Array(fields[2].utf8)
        guard namespace.count <= 255 else { throw .malformedLine(line: line, reason: "namespace longer than 255 bytes") }
        let hashField = fields[3]
        guard hashField.hasPrefix("sha256:"), let digest = Self.hex(hashField.dropFirst(7)), digest.count == 32 else {
            throw .malformedLine(line: line, reason: "password hash must be sha256:<64 hex digits> (see `idem hash-password`)")
        }
        return User(name: name, role: role, namespace: namespace, passwordHash: digest)
    }

    private static func hex(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        ConstantTime.equals(a, b)
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
