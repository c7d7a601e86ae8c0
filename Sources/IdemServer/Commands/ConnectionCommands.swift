import RESP

/// PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT: the connection's own state.
enum ConnectionCommands {
    static let table: [Command] = [
        Command(name: "ping", arity: -1, flags: [.fast], keys: (0, 0, 0), summary: "Returns PONG, or the message.", run: ping),
        Command(name: "echo", arity: 2, flags: [.fast], keys: (0, 0, 0), summary: "Returns the message.", run: echo),
        Command(name: "quit", arity: -1, flags: [.noAuth, .fast], keys: (0, 0, 0), summary: "Closes the connection.",
                run: { _ in .replyThenClose(.ok) }),
        Command(name: "select", arity: 2, flags: [.fast], keys: (0, 0, 0), summary: "Selects database 0 (the only one).",
                run: select),
        Command(name: "auth", arity: -2, flags: [.noAuth, .fast], keys: (0, 0, 0),
                summary: "Authenticates the connection: AUTH password, or AUTH user password.", run: auth),
        Command(name: "hello", arity: -1, flags: [.noAuth, .fast], keys: (0, 0, 0),
                summary: "Handshake: HELLO [2|3 [AUTH user password] [SETNAME name]].", run: hello),
        Command(name: "client", arity: -2, flags: [.fast], keys: (0, 0, 0),
                summary: "CLIENT SETNAME | GETNAME | ID | INFO | LIST | SETINFO | NO-EVICT | NO-TOUCH | HELP.", run: client),
    ]

    static func ping(_ call: Invocation) -> CommandResult {
        switch call.argumentCount {
        case 1: .reply(.simpleString("PONG"))
        case 2: .reply(.bulkString(call[1]))
        default: .reply(.wrongArity("ping"))
        }
    }

    static func echo(_ call: Invocation) -> CommandResult {
        .reply(.bulkString(call[1]))
    }

    static func select(_ call: Invocation) -> CommandResult {
        guard let index = call.integer(1) else { return .reply(.notAnInteger) }
        return .reply(index == 0 ? .ok : .error("ERR DB index is out of range"))
    }

    static func auth(_ call: Invocation) -> CommandResult {
        switch call.argumentCount {
        case 2:
            guard let defaultUser = call.server.users.defaultUser, defaultUser.passwordHash != nil else {
                if call.server.users.defaultUser == nil { return .reply(authenticate(call, user: "default", password: call[1])) }
                return .reply(.error("ERR AUTH <password> called without any password configured for the default user. "
                    + "Are you sure your configuration is correct?"))
            }
            return .reply(authenticate(call, user: "default", password: call[1]))
        case 3:
            return .reply(authenticate(call, user: String(decoding: call[1], as: UTF8.self), password: call[2]))
        default:
            return .reply(.syntaxError)
        }
    }

    /// Checks the password, switches the session's user, counts and audits failures.
    private static func authenticate(_ call: Invocation, user name: String, password: [UInt8]) -> RESPValue {
        guard let user = call.server.users.authenticate(user: name, password: password) else {
            call.server.metrics.countFailedAuthentication()
            call.server.logger.warning("authentication failed", metadata: [
                "audit": "auth-failure", "user": "\(name.prefix(64))", "client": "\(call.session.info.remoteAddress)",
                "client_id": "\(call.session.info.id)",
            ])
            return .wrongPassword
        }
        call.session.user = user
        return .ok
    }

    static func hello(_ call: Invocation) -> CommandResult {
        var version = call.session.protocolVersion
        var index = 1
        if call.argumentCount >= 2 {
            guard let requested = call.integer(1) else {
                return .reply(.error("ERR Protocol version is not an integer or out of range"))
            }
            guard let supported = RESPVersion(rawValue: Int(clamping: requested)) else {
                return .reply(.error("NOPROTO unsupported protocol version"))
            }
            version = supported
            index = 2
        }
        var credentials: (user: String, password: [UInt8])?
        var newName: [UInt8]?
        while index < call.argumentCount {
            let option = call.option(index)
            let remaining = call.argumentCount - index - 1
            if option == "AUTH" && remaining >= 2 {
                credentials = (String(decoding: call[index + 1], as: UTF8.self), call[index + 2])
                index += 3
            } else if option == "SETNAME" && remaining >= 1 {
                newName = call[index + 1]
                index += 2
            } else {
                return .reply(.error("ERR Syntax error in HELLO option '\(String(decoding: call[index].prefix(64), as: UTF8.self))'"))
            }
        }
        if let credentials {
            let outcome = authenticate(call, user: credentials.user, password: credentials.password)
            if outcome != .ok { return .reply(outcome) }
        }
        guard call.session.user != nil else {
            return .reply(.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                + "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP "
                + "protocol version at the same time"))
        }
        if let newName {
            if let problem = setName(call.session, newName) { return .reply(problem) }
        }
        call.session.protocolVersion = version
        return .reply(.map([
            (.bulk("server"), .bulk("redis")),
            (.bulk("version"), .bulk(ServerInfo.redisVersion)),
            (.bulk("proto"), .integer(Int64(version.rawValue))),
            (.bulk("id"), .integer(Int64(call.session.info.id))),
            (.bulk("mode"), .bulk("standalone")),
            (.bulk("role"), .bulk("master")),
            (.bulk("modules"), .array([])),
        ]))
    }

    /// Sets the connection's name, or says why not (Redis's rule: no spaces
    /// or special characters).
    private static func setName(_ session: Session, _ name: [UInt8]) -> RESPValue? {
        guard name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .error("ERR Client names cannot contain spaces, newlines or special characters.")
        }
        session.name = name
        session.info.fields.withLock { $0.name = String(decoding: name, as: UTF8.self) }
        return nil
    }

    static func client(_ call: Invocation) -> CommandResult {
        let subcommand = call.option(1)
        func arity(_ expected: Int) -> RESPValue? {
            let matches = expected >= 0 ? call.argumentCount == expected : call.argumentCount >= -expected
            return matches ? nil : .wrongArity("client|\(subcommand.lowercased())")
        }
        switch subcommand {
        case "SETNAME":
            if let problem = arity(3) { return .reply(problem) }
            return .reply(setName(call.session, call[2]) ?? .ok)
        case "GETNAME":
            if let problem = arity(2) { return .reply(problem) }
            return .reply(call.session.name.isEmpty ? .bulkString(nil) : .bulkString(call.session.name))
        case "ID":
            if let problem = arity(2) { return .reply(problem) }
            return .reply(.integer(Int64(call.session.info.id)))
        case "INFO":
            if let problem = arity(2) { return .reply(problem) }
            return .reply(.bulk(call.session.info.listLine(now: call.server.now) + "\n"))
        case "LIST":
            let lines = call.server.clients.list().map { $0.listLine(now: call.server.now) + "\n" }
            return .reply(.bulk(lines.joined()))
        case "SETINFO":
            if let problem = arity(4) { return .reply(problem) }
            let attribute = call.option(2)
            guard attribute == "LIB-NAME" || attribute == "LIB-VER" else {
                return .reply(.error("ERR Unrecognized option '\(String(decoding: call[2].prefix(64), as: UTF8.self))'"))
            }
            let value = call[3]
            guard value.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return .reply(.error("ERR \(attribute.lowercased()) cannot contain spaces, newlines or special characters."))
            }
            let text = String(decoding: value, as: UTF8.self)
            call.session.info.fields.withLock { fields in
                if attribute == "LIB-NAME" { fields.libraryName = text } else { fields.libraryVersion = text }
            }
            return .reply(.ok)
        case "NO-EVICT", "NO-TOUCH":
            if let problem = arity(3) { return .reply(problem) }
            let flag = call.option(2)
            return .reply(flag == "ON" || flag == "OFF" ? .ok : .syntaxError)
        case "HELP":
            return .reply(.array([
                "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
                "GETNAME", "    Return the name of the current connection.",
                "ID", "    Return the ID of the current connection.",
                "INFO", "    Return information about the current client connection.",
                "LIST", "    Return information about client connections.",
                "SETINFO <LIB-NAME|LIB-VER> <value>", "    Set client library name or version.",
                "SETNAME <name>", "    Assign the name <name> to the current connection.",
            ].map { .simpleString($0) }))
        default:
            return .reply(.unknownSubcommand(call[1], of: "client"))
        }
    }
}
