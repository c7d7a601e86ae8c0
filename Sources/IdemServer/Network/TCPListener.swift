import CIdemPosix
import Glibc

/// Why a listener could not be opened.
enum ListenError: Error {
    case addressInUse
    case failed(String)
}

/// A listening TCP socket on one loop that accepts every pending
/// connection when it is readable and hands each to `accepted`.
///
/// Invariant: runs on its loop only; after `close` it accepts nothing
/// (its descriptor is deregistered and closed exactly once).
final class TCPListener: LoopSource {
    private let descriptor: Int32
    private let loop: ServerLoop
    private let accepted: (Int32) -> Void
    private let onError: (SystemError) -> Void
    private var closed = false
    /// Out of descriptors: accepting is paused until the next tick.
    private var paused = false

    /// Binds `host`:`port` (0: any free port) with a backlog of 511.
    static func open(host: String, port: Int) throws(ListenError) -> (descriptor: Int32, port: Int) {
        var code: Int32 = 0
        let descriptor = idem_listen_tcp(host, Int32(port), 511, &code)
        guard descriptor >= 0 else {
            if code == EADDRINUSE { throw .addressInUse }
            if code <= -900 { throw .failed(String(cString: idem_resolution_error(code + 1000))) }
            throw .failed(String(cString: strerror(code)))
        }
        return (descriptor, SocketAddress.describe(descriptor, peer: false).port)
    }

    /// Starts accepting on `loop` (call on that loop's thread).
    init(descriptor: Int32, loop: ServerLoop, accepted: @escaping (Int32) -> Void,
         onError: @escaping (SystemError) -> Void) throws(SystemError) {
        self.descriptor = descriptor
        self.loop = loop
        self.accepted = accepted
        self.onError = onError
        try loop.register(descriptor, events: UInt32(EPOLLIN.rawValue), source: self)
    }

    func handle(events: UInt32) {
        // Bounded so one burst of connections cannot starve the clients
        // this loop already serves; level-triggered epoll reports the rest.
        for _ in 0..<64 where !closed {
            let client = idem_accept(descriptor)
            if client >= 0 {
                accepted(client)
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK: return
            case EINTR, ECONNABORTED, EPROTO: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Stay readable would spin the loop: wait for a tick.
                onError(SystemError("accept4"))
                paused = true
                loop.modify(descriptor, events: 0)
                return
            default:
                onError(SystemError("accept4"))
                return
            }
        }
    }

    /// Accepts again after running out of descriptors.
    func resume() {
        guard paused, !closed else { return }
        paused = false
        loop.modify(descriptor, events: UInt32(EPOLLIN.rawValue))
    }

    func close() {
        guard !closed else { return }
        closed = true
        loop.deregister(descriptor)
        Glibc.close(descriptor)
    }
}

/// Socket addresses as CLIENT LIST shows them.
enum SocketAddress {
    static func describe(_ descriptor: Int32, peer: Bool) -> (text: String, port: Int) {
        var buffer = [CChar](repeating: 0, count: 64)
        let port = idem_socket_address(descriptor, peer ? 1 : 0, &buffer, buffer.count)
        guard port >= 0 else { return ("?", 0) }
        let address = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return ("\(address):\(port)", Int(port))
    }
}
