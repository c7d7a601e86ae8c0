import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `idem backup --to DIR`: asks a running server for an online backup.
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take an online, consistent backup through a running server (IDEM.BACKUP).",
        discussion: "Restore by starting the server on the copy: idem serve --dir DIR. Check it with idem check --dir DIR.")

    @Option(help: "Directory to create (must not exist, or be empty); on the server's machine.") var to: String
    @Option(help: "Server address.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 6379
    @Option(help: "User to authenticate as (an admin).") var user: String?
    @Option(help: "Password (or IDEM_PASSWORD).") var password: String?

    func run() throws {
        let destination = to.hasPrefix("/") ? to : FileManager.default.currentDirectoryPath + "/" + to
        let connection = try LineClient(host: host, port: port)
        if let password = password ?? ProcessInfo.processInfo.environment["IDEM_PASSWORD"] {
            let reply = try connection.call(user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
            guard reply == "+OK" else { throw ValidationError("authentication failed: \(reply.dropFirst())") }
        }
        let reply = try connection.call(["IDEM.BACKUP", destination])
        guard !reply.hasPrefix("-") else { throw ValidationError("backup failed: \(reply.dropFirst())") }
        print("backup written to \(destination): \(reply)")
    }
}

/// Just enough of a Redis client for `idem backup`: sends one command,
/// reads one reply and renders it as text (`+OK`, `-ERR ...`, `a=1 b=2`).
private final class LineClient {
    private let socket: Int32
    private var buffer: [UInt8] = []

    init(host: String, port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw ValidationError("--host must be an IPv4 address") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw ValidationError("cannot connect to \(host):\(port): \(String(cString: strerror(errno)))") }
    }

    deinit { close(socket) }

    func call(_ arguments: [String]) throws -> String {
        var request = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments { request += Array("$\(argument.utf8.count)\r\n\(argument)\r\n".utf8) }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw ValidationError("connection lost") }
            sent += count
        }
        return try reply()
    }

    private func line() throws -> String {
        while true {
            if let end = buffer.firstIndex(of: 10) {
                let text = String(decoding: buffer[..<end], as: UTF8.self).trimmingCharacters(in: .newlines)
                buffer.removeFirst(end + 1)
                return text
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw ValidationError("connection closed by the server") }
            buffer += chunk[..<count]
        }
    }

    private func reply() throws -> String {
        let header = try line()
        switch header.first {
        case "*", "%":
            let count = (Int(header.dropFirst()) ?? 0) * (header.first == "%" ? 2 : 1)
            var parts: [String] = []
            for _ in 0..<max(0, count) { parts.append(try reply()) }
            return stride(from: 0, to: parts.count - 1, by: 2).map { "\(parts[$0])=\(parts[$0 + 1])" }.joined(separator: " ")
        case "$":
            return header == "$-1" ? "(nil)" : try line()
        case ":":
            return String(header.dropFirst())
        default:
            return header
        }
    }
}
