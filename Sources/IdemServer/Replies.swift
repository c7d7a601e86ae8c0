import IdemEngine
import Idempotency
import RESP

/// The error replies, worded as Redis words them for the same condition:
/// clients and tests match on these texts.
extension RESPValue {
    static let syntaxError = RESPValue.error("ERR syntax error")
    static let notAnInteger = RESPValue.error("ERR value is not an integer or out of range")
    static let wrongType = RESPValue.error("WRONGTYPE Operation against a key holding the wrong kind of value")
    static let authenticationRequired = RESPValue.error("NOAUTH Authentication required.")
    static let wrongPassword = RESPValue.error("WRONGPASS invalid username-password pair or user is disabled.")
    static let invalidCursor = RESPValue.error("ERR invalid cursor")

    static func wrongArity(_ command: String) -> RESPValue {
        .error("ERR wrong number of arguments for '\(command)' command")
    }

    static func invalidExpireTime(_ command: String) -> RESPValue {
        .error("ERR invalid expire time in '\(command)' command")
    }

    static func noPermission(user: String, command: String) -> RESPValue {
        .error("NOPERM User \(user) has no permissions to run the '\(command)' command")
    }

    static func unknownSubcommand(_ subcommand: [UInt8], of command: String) -> RESPValue {
        .error("ERR unknown subcommand '\(String(decoding: subcommand.prefix(128), as: UTF8.self))'. Try \(command.uppercased()) HELP.")
    }

    static func unknownCommand(_ arguments: RequestArguments) -> RESPValue {
        var text = "ERR unknown command '\(String(decoding: arguments[0].prefix(128), as: UTF8.self))', with args beginning with: "
        for index in 1..<min(arguments.count, 17) {
            text += "'\(String(decoding: arguments[index].prefix(128), as: UTF8.self))' "
        }
        return .error(text)
    }

    /// A write or read the engine refused: the engine's own words after `ERR`
    /// (e.g. `ERR no space left on device ...`, `ERR engine is read-only: ...`).
    static func engineFailure(_ error: EngineError) -> RESPValue {
        .error("ERR \(error)")
    }

    static func idempotencyFailure(_ error: IdempotencyError) -> RESPValue {
        switch error {
        case .wrongType: .wrongType
        case .engine(let engineError): .engineFailure(engineError)
        case .fingerprintMismatch: .error("MISMATCH the key was used with a different request fingerprint")
        case .leaseLost: .leaseLost
        default: .error("ERR \(error)")
        }
    }

    static let leaseLost = RESPValue.error("LEASELOST the token does not own the current attempt on this key")
}
