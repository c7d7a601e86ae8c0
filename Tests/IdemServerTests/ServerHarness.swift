import Foundation
import IdemEngine
@testable import IdemServer
import Logging
import RESP
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A server on an ephemeral port over a fresh temporary directory, with a
/// manual clock (TTL tests move time instead of sleeping).
final class ServerHarness: @unchecked Sendable {
    let directory: String
    let clock: ManualClock
    var configuration: ServerConfiguration
    private(set) var server: IdemServer?

    init(durability: Durability = .never, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
        directory = NSTemporaryDirectory() + "idem-server-\(UUID().uuidString)"
        clock = ManualClock()
        configuration = ServerConfiguration()
        configuration.directory = directory
        configuration.port = 0
        configuration.metricsPort = 0
        configuration.eventLoopThreads = 2
        // Both loops serve from the start, so every test crosses loops;
        // moving between them has tests of its own.
        configuration.balanceEventLoops = false
        configuration.engine.durability = durability
        configuration.engine.clock = clock
        configure(&configuration)
        try await start()
    }

    func start() async throws {
        var logger = Logger(label: "idem-test")
        logger.logLevel = .critical
        server = try await IdemServer.start(configuration: configuration, logger: logger)
    }

    var port: Int { server!.port }

    func client(protocolVersion: RESPVersion = .resp2) throws -> RESPClient {
        let client = try RESPClient(port: port)
        if protocolVersion == .resp3 { _ = try client.call("HELLO", "3") }
        return client
    }

    func restart() async throws {
        try await server?.shutdown()
        try await start()
    }

    func stop() async throws {
        try await server?.shutdown()
        server = nil
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` against a fresh server and always stops it.
func withServer(durability: Durability = .never, configure: (inout ServerConfiguration) -> Void = { _ in },
                _ body: (ServerHarness) async throws -> Void) async throws {
    let harness = try await ServerHarness(durability: durability, configure: configure)
    do {
        try await body(harness)
    } catch {
        try? await harness.stop()
        throw error
    }
    try await harness.stop()
}

/// A reply as the test client decodes it (RESP2 and RESP3).
indirect enum Reply: Equatable, CustomStringConvertible {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk(String?)
    case array([Reply]?)
    case null
    case boolean(Bool)
    case double(String)
    case map([Reply])
    case set([Reply])

    var description: String {
        switch self {
        case .simple(let text): "+\(text)"
        case .error(let text): "-\(text)"
        case .integer(let value): ":\(value)"
        case .bulk(let text): text.map { "\"\($0)\"" } ?? "(nil)"
        case .array(let items): items.map { "[\($0.map(\.description).joined(separator: ", "))]" } ?? "(nil array)"
        case .null: "_"
        case .boolean(let flag): "#\(flag)"
        case .double(let text): ",\(text)"
        case .map(let items): "%{\(items.map(\.description).joined(separator: ", "))}"
        case .set(let items): "~[\(items.map(\.description).joined(separator: ", "))]"
        }
    }

    var string: String? {
        switch self {
        case .simple(let text), .error(let text): text
        case .bulk(let text): text
        default: nil
        }
    }

    var items: [Reply] {
        switch self {
        case .array(let items): items ?? []
        case .map(let items), .set(let items): items
        default: []
        }
    }
}

/// A blocking client over a plain socket, so a test can send exact bytes
/// (malformed ones included) and read exact replies. One thread may send
/// while another reads: `send` touches only the socket, never `buffer`.
final class RESPClient: @unchecked Sendable {
    private let socket: Int32
    private var buffer: [UInt8] = []

    init(port: Int, receiveBufferBytes: Int32? = nil) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBufferBytes {
            setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw ClientError.connectFailed(errno) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(socket) }

    enum ClientError: Error {
        case connectFailed(Int32)
        case closed
        case malformed(String)
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw ClientError.closed }
            offset += written
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
        }
        return bytes
    }

    func call(_ arguments: String...) throws -> Reply {
        try send(Self.encode(arguments.map { Array($0.utf8) }))
        return try read()
    }

    func call(bytes arguments: [[UInt8]]) throws -> Reply {
        try send(Self.encode(arguments))
        return try read()
    }

    /// Whether the server has closed the connection (reads EOF).
    func isClosedByServer() -> Bool {
        var byte: UInt8 = 0
        while true {
            let count = recv(socket, &byte, 1, 0)
            if count == 0 { return true }
            if count < 0 { return errno != EAGAIN && errno != EWOULDBLOCK ? true : false }
        }
    }

    /// Everything until the server closes the connection.
    func readToEnd() -> String {
        while (try? fill()) != nil {}
        defer { buffer.removeAll() }
        return String(decoding: buffer, as: UTF8.self)
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw ClientError.closed }
        buffer += chunk[0..<count]
    }

    private func line() throws -> String {
        while true {
            if let end = buffer.firstIndex(of: 10), end > 0, buffer[end - 1] == 13 {
                let text = String(decoding: buffer[0..<(end - 1)], as: UTF8.self)
                buffer.removeFirst(end + 1)
                return text
            }
            try fill()
        }
    }

    func read() throws -> Reply {
        let header = try line()
        guard let type = header.first else { throw ClientError.malformed(header) }
        let rest = String(header.dropFirst())
        switch type {
        case "+": return .simple(rest)
        case "-": return .error(rest)
        case ":": return .integer(Int64(rest)!)
        case "_": return .null
        case "#": return .boolean(rest == "t")
        case ",": return .double(rest)
        case "$":
            let length = Int(rest)!
            if length < 0 { return .bulk(nil) }
            while buffer.count < length + 2 { try fill() }
            let text = String(decoding: buffer[0..<length], as: UTF8.self)
            buffer.removeFirst(length + 2)
            return .bulk(text)
        case "*", "%", "~":
            let count = Int(rest)!
            if count < 0 { return .array(nil) }
            let items = try (0..<(type == "%" ? count * 2 : count)).map { _ in try read() }
            return type == "*" ? .array(items) : type == "%" ? .map(items) : .set(items)
        default:
            throw ClientError.malformed(header)
        }
    }
}

func bulk(_ text: String) -> Reply { .bulk(text) }
let ok = Reply.simple("OK")
let nilBulk = Reply.bulk(nil)
