import TLSKit
#if canImport(Glibc)
import Glibc
#endif

/// The far end of a tunnel (`serve --forward`'s backend, `connect --listen`'s TLS
/// server): its name as typed and its addresses, resolved once at start and tried in
/// order for each connection.
struct TunnelTarget {
    let endpoint: Endpoint
    let addresses: [TCP.Address]

    static func resolve(_ endpoint: Endpoint) throws -> TunnelTarget {
        TunnelTarget(endpoint: endpoint, addresses: try TCP.resolve(host: endpoint.host, port: endpoint.port, backend: .tlsctl))
    }
}

/// `ECONNREFUSED` for log lines: the symbol next to strerror's text, for grepping.
func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        ECONNREFUSED: "ECONNREFUSED", ECONNRESET: "ECONNRESET", ETIMEDOUT: "ETIMEDOUT", EPIPE: "EPIPE",
        EHOSTUNREACH: "EHOSTUNREACH", ENETUNREACH: "ENETUNREACH", EADDRNOTAVAIL: "EADDRNOTAVAIL",
        EMFILE: "EMFILE", ENFILE: "ENFILE", ENOBUFS: "ENOBUFS", EACCES: "EACCES", EPERM: "EPERM",
        ECONNABORTED: "ECONNABORTED", ENOTCONN: "ENOTCONN",
    ]
    return "\(String(cString: strerror(code))) (\(names[code] ?? "errno \(code)"))"
}

/// One tunnelled connection: a TLS session on one socket, plaintext on another, bytes
/// relayed both ways. The same relay serves both modes:
/// - `.forward` (`serve --forward`): the TLS side was accepted from a client; the plain
///   side is a connection to the backend, opened once the handshake is done.
/// - `.listen` (`connect --listen`): the plain side was accepted from a local client; the
///   TLS side is a new client connection to the server.
///
/// Everything is non-blocking and driven by ``ServerLoop``'s poll: ``step()`` makes all
/// the progress it can, ``tlsEvents``/``plainEvents`` say what to wait for next.
/// Half-close is preserved: the TLS peer's close_notify becomes `shutdown(SHUT_WR)` on
/// the plain socket, the plain peer's end of stream becomes our close_notify, and the
/// other direction goes on until it ends too. Each direction buffers at most
/// ``bufferLimit`` bytes: a side is not read while the other has not taken what came.
final class Tunnel {
    enum Role { case forward, listen }
    enum Stage { case connecting, handshaking, relaying, closing, done }

    /// Bytes held per direction before the sending side stops being read.
    static let bufferLimit = 64 * 1024

    let role: Role
    let connection: TLSConnection
    let target: TunnelTarget
    /// The accepted peer's address, for the log line.
    let peer: String
    let connectTimeout: Duration
    private(set) var tlsDescriptor: Int32
    private(set) var plainDescriptor: Int32
    private(set) var stage: Stage
    /// Until then the TCP connect and the handshake must be done.
    private(set) var deadline: ContinuousClock.Instant
    /// The one line this connection leaves on stderr, once it is done.
    private(set) var ending: String?
    /// Whether the TLS side ended cleanly enough for its socket to linger (to let our
    /// last records reach the peer), and whether the plain side ended cleanly (else reset).
    private(set) var plainClean = true

    private var candidate = 0
    private var lastConnectError: Int32 = 0
    private var tlsWaits: Int16 = 0      // what the handshake / shutdown asked for
    private var readWaits: Int16 = 0
    private var writeWaits: Int16 = 0
    private var closeWaits: Int16 = 0
    private var plainWantsOut = false
    private var again = false

    private var toPlain: [UInt8] = []
    private var toTLS: [UInt8] = []
    private var inFlight: [UInt8]?
    private var tlsInputEnded = false
    private var plainOutputShut = false
    private var plainInputEnded = false
    private var closeNotifySent = false
    private var tlsToPlainBytes = 0
    private var plainToTLSBytes = 0
    private var handshakeDone = false
    private var transportSet = false

    /// `.forward`: `descriptor` is the accepted TLS client. `.listen`: the accepted
    /// plaintext client; the TLS connection to `target` starts now.
    init(role: Role, descriptor: Int32, peer: String, connection: TLSConnection, target: TunnelTarget,
         connectTimeout: Duration) {
        self.role = role
        self.connection = connection
        self.target = target
        self.peer = peer
        self.connectTimeout = connectTimeout
        deadline = ContinuousClock.now + connectTimeout
        switch role {
        case .forward:
            tlsDescriptor = descriptor
            plainDescriptor = -1
            stage = .handshaking
        case .listen:
            tlsDescriptor = -1
            plainDescriptor = descriptor
            stage = .connecting
        }
    }

    /// What the TLS side is called in log lines: the client we accepted, or the server.
    private var tlsName: String { role == .forward ? "client" : "server" }
    private var plainName: String { role == .forward ? "backend" : "client" }

    /// True when ``step()`` stopped with work left (it yields to other connections).
    var wantsAnotherRound: Bool { again }

    /// The poll events for the TLS socket (0: leave it out).
    var tlsEvents: Int16 {
        switch stage {
        case .connecting: return role == .listen ? Int16(POLLOUT) : 0
        case .handshaking: return tlsWaits
        case .closing: return closeWaits
        case .done: return 0
        case .relaying:
            var events: Int16 = 0
            if !tlsInputEnded && toPlain.count < Tunnel.bufferLimit { events |= readWaits }
            if inFlight != nil { events |= writeWaits }
            if plainInputEnded && !closeNotifySent { events |= closeWaits }
            return events
        }
    }

    /// The poll events for the plain socket (0: leave it out).
    var plainEvents: Int16 {
        switch stage {
        case .connecting: return role == .forward ? Int16(POLLOUT) : 0
        case .relaying:
            var events: Int16 = 0
            if !plainInputEnded && toTLS.count < Tunnel.bufferLimit { events |= Int16(POLLIN) }
            if plainWantsOut { events |= Int16(POLLOUT) }
            return events
        default: return 0
        }
    }

    /// Moves the connection as far as it can go without blocking.
    func step() {
        again = false
        if stage == .connecting { continueConnect() }
        if stage == .handshaking { handshake() }
        if stage == .relaying { relay() }
        if stage == .closing { sendCloseNotifyAndEnd() }
    }

    /// The connect or the handshake did not finish in time.
    func expire() {
        let what = stage == .connecting ? "connect to \(target.endpoint)" : "handshake"
        end("\(what) not completed within \(connectTimeout.components.seconds) s", clean: false)
    }

    /// The line for stderr: `PEER -> TARGET: TLSv1.3 CIPHER, N bytes up, M bytes down, ENDING`.
    var logLine: String {
        var line = "\(peer) -> \(target.endpoint): "
        if handshakeDone {
            let version = connection.negotiatedVersion.map { "\($0)" } ?? "?"
            let up = role == .forward ? tlsToPlainBytes : plainToTLSBytes
            let down = role == .forward ? plainToTLSBytes : tlsToPlainBytes
            line += "\(version) \(connection.cipherSuite ?? "?"), \(up) bytes up, \(down) bytes down, "
        }
        return line + (ending ?? "open")
    }

    // MARK: - Connect

    /// Starts (or checks) the non-blocking TCP connect to the target, trying its
    /// addresses in order.
    private func continueConnect() {
        var descriptor = role == .forward ? plainDescriptor : tlsDescriptor
        if descriptor >= 0 {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 {
                var address = sockaddr_storage()
                var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let status = withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &addressLength) }
                }
                if status == 0 { connected(descriptor) }
                return  // still in progress (a spurious wake-up)
            }
            lastConnectError = error
            systemClose(descriptor)
            descriptor = -1
            candidate += 1
        }
        while candidate < target.addresses.count {
            let address = target.addresses[candidate]
            let fd = socket(address.family,
                            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue), 0)
            if fd < 0 { lastConnectError = errno; candidate += 1; continue }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let result = address.withSockaddr { connect(fd, $0, $1) }
            if result == 0 || errno == EINPROGRESS {
                if role == .forward { plainDescriptor = fd } else { tlsDescriptor = fd }
                if result == 0 { connected(fd) }
                return
            }
            lastConnectError = errno
            systemClose(fd)
            candidate += 1
        }
        if role == .forward { plainDescriptor = -1 } else { tlsDescriptor = -1 }
        let failure = "\(role == .forward ? "backend" : "server") connect failed: \(errnoName(lastConnectError))"
        if role == .forward {
            ending = failure
            stage = .closing  // the client gets our close_notify
        } else {
            end(failure, clean: false)
        }
    }

    private func connected(_ fd: Int32) {
        if role == .forward {
            stage = .relaying
        } else {
            do {
                try connection.setTransport(.socket(fd))
                connection.serverName = connection.serverName ?? target.endpoint.host
                try connection.setConnectState()
            } catch {
                end(describe(error), clean: false)
                return
            }
            stage = .handshaking
        }
    }

    // MARK: - Handshake

    private func handshake() {
        if role == .forward && !transportSet {
            transportSet = true
            do {
                try connection.setTransport(.socket(tlsDescriptor))
                try connection.setAcceptState()
            } catch {
                return end("handshake failed: \(describe(error))", clean: false)
            }
        }
        let result = role == .forward ? connection.accept() : connection.connect()
        if result == 1 {
            handshakeDone = true
            if role == .forward {
                stage = .connecting
                deadline = ContinuousClock.now + connectTimeout
                continueConnect()
            } else {
                stage = .relaying
            }
            return
        }
        let code = connection.error(for: result)
        switch code {
        case .wantRead, .wantWrite:
            tlsWaits = Int16(code == .wantWrite ? POLLOUT : POLLIN)
        case .zeroReturn:
            end("handshake failed: the \(tlsName) closed the connection (close_notify)", clean: false)
        default:
            end("handshake failed: \(describe(failure()))", clean: false)
        }
    }

    // MARK: - Relay

    private func relay() {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        for _ in 0..<64 {
            var progressed = false
            // TLS → plain: decrypt while there is room.
            if !tlsInputEnded && toPlain.count < Tunnel.bufferLimit {
                let result = buffer.withUnsafeMutableBytes { connection.read(into: $0) }
                if result > 0 {
                    toPlain += buffer[0..<Int(result)]
                    progressed = true
                } else {
                    let code = connection.error(for: result)
                    switch code {
                    case .wantRead, .wantWrite: readWaits = Int16(code == .wantWrite ? POLLOUT : POLLIN)
                    case .zeroReturn: tlsInputEnded = true; progressed = true
                    default: return end("\(tlsName): \(describe(failure()))", clean: false)
                    }
                }
            }
            plainWantsOut = false
            if !toPlain.isEmpty {
                let sent = toPlain.withUnsafeBytes { send(plainDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent > 0 {
                    toPlain.removeFirst(sent)
                    tlsToPlainBytes += sent
                    progressed = true
                } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    plainWantsOut = true
                } else {
                    return end("\(plainName): send: \(errnoName(errno))", clean: false)
                }
            }
            // The TLS peer's close_notify, once its data is delivered: end of stream for the plain peer.
            if tlsInputEnded && toPlain.isEmpty && !plainOutputShut {
                Glibc.shutdown(plainDescriptor, Int32(SHUT_WR))
                plainOutputShut = true
                progressed = true
            }
            // plain → TLS: read while there is room.
            if !plainInputEnded && toTLS.count < Tunnel.bufferLimit {
                let received = buffer.withUnsafeMutableBytes { recv(plainDescriptor, $0.baseAddress, $0.count, 0) }
                if received > 0 {
                    toTLS += buffer[0..<received]
                    progressed = true
                } else if received == 0 {
                    plainInputEnded = true
                    progressed = true
                } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    return end("\(plainName): recv: \(errnoName(errno))", clean: false)
                }
            }
            if inFlight == nil && !toTLS.isEmpty {
                let count = min(toTLS.count, 16_384)
                inFlight = Array(toTLS[0..<count])
                toTLS.removeFirst(count)
            }
            if let pending = inFlight {
                let result = connection.write(pending)  // a retry passes the same bytes
                if result > 0 {
                    inFlight = nil
                    plainToTLSBytes += pending.count
                    progressed = true
                } else {
                    let code = connection.error(for: result)
                    guard code == .wantRead || code == .wantWrite else {
                        return end("\(tlsName): \(describe(failure()))", clean: false)
                    }
                    writeWaits = Int16(code == .wantWrite ? POLLOUT : POLLIN)
                }
            }
            // The plain peer's end of stream, once its data is sent: our close_notify.
            if plainInputEnded && toTLS.isEmpty && inFlight == nil && !closeNotifySent {
                let result = connection.shutdown()
                let code = connection.error(for: result)
                if result >= 0 || code == .wantRead {
                    closeNotifySent = true
                    progressed = true
                } else if code == .wantWrite {
                    closeWaits = Int16(POLLOUT)
                } else {
                    return end("\(tlsName): shutdown: \(describe(failure()))", clean: false)
                }
            }
            if tlsInputEnded && plainOutputShut && plainInputEnded && closeNotifySent {
                return end("closed cleanly", clean: true)
            }
            if !progressed { return }
        }
        again = true  // more to do: yield to the other connections, come back at once
    }

    /// After a failed backend connect: close_notify to the client (a want-write is
    /// retried), then done.
    private func sendCloseNotifyAndEnd() {
        let result = connection.shutdown()
        if result < 0 && connection.error(for: result) == .wantWrite {
            closeWaits = Int16(POLLOUT)
            return
        }
        stage = .done
    }

    private func end(_ text: String, clean: Bool) {
        ending = text
        plainClean = clean
        stage = .done
    }

    private func failure() -> TLSError {
        connection.lastError ?? TLSError(.internalError, "the connection failed", backend: connection.context.backendID)
    }
}
