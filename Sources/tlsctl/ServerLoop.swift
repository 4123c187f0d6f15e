// Why one file of 400+ lines: the poll loop owns every descriptor of `serve` and
// `connect --listen` (listener, signal pipe, clients, tunnels, draining sockets); its
// one `run` and the per-kind steps it calls read as one state machine, and moving them
// apart would expose that state to other files.
import TLSKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The write end of the self-pipe that SIGINT/SIGTERM (and SIGHUP, for `serve`) wake
/// the poll loop through. Written once before the handlers are installed, then only
/// read (by the handler).
nonisolated(unsafe) private var stopSignalPipe: Int32 = -1

/// Makes SIGINT and SIGTERM (and SIGHUP when `reloads`) write their number to a socket
/// pair; returns the read end.
private func installStopSignals(reloads: Bool) throws -> Int32 {
    var fds: [Int32] = [-1, -1]
    // A socket pair rather than pipe(2): it is made close-on-exec and non-blocking in one
    // call (Glibc's Swift module has no pipe2).
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue)
    guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
        throw TLSError(.internalError, "socketpair: \(String(cString: strerror(errno)))", backend: .tlsctl, errno: errno)
    }
    stopSignalPipe = fds[1]
    let handler: @convention(c) (Int32) -> Void = { signal in
        var byte = UInt8(truncatingIfNeeded: signal)
        _ = write(stopSignalPipe, &byte, 1)
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    if reloads { signal(SIGHUP, handler) }
    signal(SIGPIPE, SIG_IGN)
    // A parent may have started us with these signals blocked (the mask is inherited).
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    sigaddset(&stopSignals, SIGINT)
    sigaddset(&stopSignals, SIGTERM)
    if reloads { sigaddset(&stopSignals, SIGHUP) }
    sigprocmask(SIG_UNBLOCK, &stopSignals, nil)
    return fds[0]
}

/// One client of `tlsctl serve`, driven by its TLS calls' want-read/want-write results.
private final class Client {
    enum Phase { case handshaking, open, closing }

    let descriptor: Int32
    let address: String
    let connection: TLSConnection
    let handshakeDeadline: ContinuousClock.Instant
    var phase = Phase.handshaking
    /// The poll events the last TLS call asked for.
    var waits = Int16(POLLIN)
    /// Bytes still to send, and the slice `write` is working on (retried unchanged).
    var outbox: [UInt8] = []
    var inFlight: [UInt8]?
    /// HTTP: request bytes received and not yet answered.
    var inbox: [UInt8] = []
    var closeWhenFlushed = false

    init(descriptor: Int32, address: String, connection: TLSConnection, handshakeDeadline: ContinuousClock.Instant) {
        self.descriptor = descriptor
        self.address = address
        self.connection = connection
        self.handshakeDeadline = handshakeDeadline
    }
}

/// What ``ServerLoop`` does with each accepted connection.
enum Service {
    /// TLS server: echo or answer HTTP (`tlsctl serve`).
    case respond(ServeMode)
    /// Relay to `target`: `.forward` accepts TLS and connects in plaintext
    /// (`serve --forward`); `.listen` accepts plaintext and connects with TLS
    /// (`connect --listen`).
    case tunnel(Tunnel.Role, TunnelTarget)
}

/// The single-threaded server: one poll set with the listener, the signal pipe and
/// every client socket.
final class ServerLoop {
    private let backend: any TLSBackend.Type
    /// The context of each new connection: the one in use when it is accepted.
    private let context: () -> TLSContext
    /// `serve`: SIGHUP reloads the certificate (the reloading context logs the outcome).
    private let reload: (() -> Void)?
    private var listener: TLSListener?
    private let service: Service
    private var mode: ServeMode { if case .respond(let mode) = service { return mode } else { return .echo } }
    private let maxConnections: Int?
    private let handshakeTimeout: Duration
    private let signalDescriptor: Int32
    private var clients: [Int32: Client] = [:]
    private var tunnels: [ObjectIdentifier: Tunnel] = [:]
    /// Finished sockets, write side shut, read until the client closes or the deadline:
    /// closing with unread input would send a TCP reset that can destroy our last
    /// records (an alert, close_notify) before the client reads them.
    private var draining: [Int32: ContinuousClock.Instant] = [:]
    private let lingerTime = Duration.seconds(2)
    private var accepted = 0
    private var acceptPausedUntil: ContinuousClock.Instant?
    /// One read at a time; a client whose replies cannot be sent is not read from
    /// until they are (back-pressure), so its queue stays bounded.
    private var buffer = [UInt8](repeating: 0, count: 16_384)

    init(backend: any TLSBackend.Type, context: @escaping () -> TLSContext, reload: (() -> Void)? = nil,
         listener: TLSListener, service: Service, maxConnections: Int?, handshakeTimeout: Duration) throws {
        self.backend = backend
        self.context = context
        self.reload = reload
        self.listener = listener
        self.service = service
        self.maxConnections = maxConnections
        self.handshakeTimeout = handshakeTimeout
        signalDescriptor = try installStopSignals(reloads: reload != nil)
    }

    /// Serves until SIGINT/SIGTERM, or until --max-connections have been served.
    func run() throws {
        while true {
            if let maxConnections, accepted >= maxConnections {
                listener = nil  // closes the listening socket
                if clients.isEmpty && tunnels.isEmpty && draining.isEmpty { return }
            }
            var entries: [pollfd] = [pollfd(fd: signalDescriptor, events: Int16(POLLIN), revents: 0)]
            let now = ContinuousClock.now
            if let until = acceptPausedUntil, until <= now { acceptPausedUntil = nil }
            let listening = listener != nil && acceptPausedUntil == nil
            if let listener, listening {
                entries.append(pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0))
            }
            let clientStart = entries.count
            var wake = now + .seconds(1)
            if let until = acceptPausedUntil { wake = min(wake, until) }
            let order = Array(clients.values)
            for client in order {
                entries.append(pollfd(fd: client.descriptor, events: client.waits, revents: 0))
                if client.phase == .handshaking { wake = min(wake, client.handshakeDeadline) }
            }
            let tunnelStart = entries.count
            let tunnelOrder = Array(tunnels.values)
            for tunnel in tunnelOrder {
                // A socket with nothing to wait for is left out (-1): a hung-up one would wake poll at once.
                let tls = tunnel.tlsEvents, plain = tunnel.plainEvents
                entries.append(pollfd(fd: tls == 0 ? -1 : tunnel.tlsDescriptor, events: tls, revents: 0))
                entries.append(pollfd(fd: plain == 0 ? -1 : tunnel.plainDescriptor, events: plain, revents: 0))
                if tunnel.stage == .connecting || tunnel.stage == .handshaking { wake = min(wake, tunnel.deadline) }
                if tunnel.wantsAnotherRound { wake = now }
            }
            let drainStart = entries.count
            let drainOrder = Array(draining.keys)
            for fd in drainOrder {
                entries.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                wake = min(wake, draining[fd]!)
            }
            let left = wake - now
            let milliseconds = max(0, Int32(clamping: left.components.seconds * 1000
                + left.components.attoseconds / 1_000_000_000_000_000 + 1))
            let ready = poll(&entries, nfds_t(entries.count), milliseconds)
            if ready < 0 && errno != EINTR {
                throw TLSError(.transportFailure, "poll: \(String(cString: strerror(errno)))", backend: .tlsctl, errno: errno)
            }
            if entries[0].revents != 0 {
                var signal: UInt8 = 0
                var stopping = false
                while !stopping && read(signalDescriptor, &signal, 1) == 1 {
                    if Int32(signal) == SIGHUP, let reload {
                        reload()
                    } else {
                        stopping = true
                    }
                }
                if stopping {
                    stop(signal: Int32(signal))
                    return
                }
            }
            for (offset, tunnel) in tunnelOrder.enumerated()
            where tunnel.wantsAnotherRound || entries[tunnelStart + 2 * offset].revents != 0
                || entries[tunnelStart + 2 * offset + 1].revents != 0 {
                advance(tunnel)
            }
            if ready > 0 {
                for (offset, client) in order.enumerated() where entries[clientStart + offset].revents != 0 {
                    advance(client)
                }
                for (offset, fd) in drainOrder.enumerated() where entries[drainStart + offset].revents != 0 {
                    drain(fd)
                }
                if listening && entries[1].revents != 0 { acceptPending() }
            }
            let after = ContinuousClock.now
            for (fd, deadline) in draining where deadline <= after {
                systemClose(fd)
                draining[fd] = nil
            }
            for client in clients.values where client.phase == .handshaking && client.handshakeDeadline <= after {
                log("\(client.address): handshake not completed within \(handshakeTimeout.components.seconds) s; dropped")
                finish(client)
            }
            for tunnel in tunnels.values where tunnel.deadline <= after
                && (tunnel.stage == .connecting || tunnel.stage == .handshaking) {
                tunnel.expire()
                advance(tunnel)
            }
        }
    }

    /// Accepts what the listener has queued (at most 64 per round, and never beyond
    /// --max-connections).
    private func acceptPending() {
        guard let listener else { return }
        for _ in 0..<64 {
            if let maxConnections, accepted >= maxConnections { return }
            let fd: Int32
            do {
                fd = try listener.acceptDescriptor(timeout: .zero)
            } catch let error as TLSError where error.code == .timedOut {
                return  // nothing more queued
            } catch let error as TLSError {
                log("accept: \(describe(error))")
                if error.errno == EMFILE || error.errno == ENFILE || error.errno == ENOBUFS || error.errno == ENOMEM {
                    acceptPausedUntil = ContinuousClock.now + .milliseconds(200)
                }
                return
            } catch {
                log("accept: \(error)")
                return
            }
            accepted += 1
            if case .tunnel(let role, let target) = service {
                let tunnel = Tunnel(role: role, descriptor: fd, peer: peerAddress(fd), connection: context().makeConnection(),
                                    target: target, connectTimeout: handshakeTimeout)
                tunnels[ObjectIdentifier(tunnel)] = tunnel
                advance(tunnel)
                continue
            }
            let connection = context().makeConnection()
            do {
                try connection.setTransport(.socket(fd))
                try connection.setAcceptState()
            } catch {
                log("\(peerAddress(fd)): \(describe(error))")
                systemClose(fd)
                continue
            }
            let client = Client(descriptor: fd, address: peerAddress(fd), connection: connection,
                                handshakeDeadline: ContinuousClock.now + handshakeTimeout)
            clients[fd] = client
            advance(client)
        }
    }

    /// Moves one client as far as it can go without blocking.
    private func advance(_ client: Client) {
        if client.phase == .handshaking {
            let result = client.connection.accept()
            if result != 1 {
                let code = client.connection.error(for: result)
                switch code {
                case .wantRead, .wantWrite:
                    client.waits = Int16(code == .wantWrite ? POLLOUT : POLLIN)
                case .zeroReturn:
                    log("\(client.address): the client closed the connection (close_notify) during the handshake")
                    finish(client)
                default:
                    log("\(client.address): \(describe(failure(client)))")
                    finish(client)
                }
                return
            }
            client.phase = .open
        }
        if client.phase == .open { serve(client) }
        if client.phase == .closing { close(client) }
    }

    /// Established: write what is queued, read what arrived, until a call must wait.
    private func serve(_ client: Client) {
        let connection = client.connection
        for _ in 0..<1_000 {  // bounded: yield to the other clients now and then
            if let inFlight = client.inFlight {
                let result = connection.write(inFlight)
                if result > 0 {
                    client.inFlight = nil
                } else {
                    let code = connection.error(for: result)
                    if code == .wantRead || code == .wantWrite {
                        client.waits = Int16(code == .wantWrite ? POLLOUT : POLLIN)
                    } else {
                        log("\(client.address): \(describe(failure(client)))")
                        finish(client)
                    }
                    return
                }
            }
            if !client.outbox.isEmpty {
                let count = min(client.outbox.count, 64 * 1024)
                client.inFlight = Array(client.outbox[0..<count])
                client.outbox.removeFirst(count)
                continue
            }
            if client.closeWhenFlushed {
                client.phase = .closing
                return
            }
            let result = buffer.withUnsafeMutableBytes { connection.read(into: $0) }
            if result > 0 {
                receive(Array(buffer[0..<Int(result)]), from: client)
                continue
            }
            let code = connection.error(for: result)
            switch code {
            case .wantRead, .wantWrite:
                client.waits = Int16(code == .wantWrite ? POLLOUT : POLLIN)
                return
            case .zeroReturn:
                client.closeWhenFlushed = true  // answer the client's close_notify with ours
            default:
                let error = failure(client)
                // An HTTP client between requests may just close the socket.
                if !(mode == .http && error.code == .unexpectedEOF && client.inbox.isEmpty) {
                    log("\(client.address): \(describe(error))")
                }
                finish(client)
                return
            }
        }
        client.waits = Int16(POLLIN | POLLOUT)  // more to do: come back on the next round
    }

    /// Application data from a client: echoed, or parsed as HTTP requests.
    private func receive(_ bytes: [UInt8], from client: Client) {
        switch mode {
        case .echo:
            client.outbox += bytes
        case .http:
            client.inbox += bytes
            let (responses, close) = HTTPResponder.respond(to: &client.inbox, connection: client.connection,
                                                          backend: backend)
            client.outbox += responses
            if close { client.closeWhenFlushed = true }
        }
    }

    /// Sends close_notify (retried on want) and closes; the client's reply is not awaited.
    private func close(_ client: Client) {
        let result = client.connection.shutdown()
        if result < 0 {
            let code = client.connection.error(for: result)
            if code == .wantWrite {
                client.waits = Int16(POLLOUT)  // close_notify not flushed yet
                return
            }
            if code == .wantRead { finish(client); return }  // ours is out; the reply is not awaited
            log("\(client.address): shutdown: \(describe(failure(client)))")
        }
        finish(client)
    }

    /// Done with a client: shut our side, then read and discard until it closes
    /// (at most `lingerTime`), so the last records we sent reach it.
    private func finish(_ client: Client) {
        clients[client.descriptor] = nil
        retire(client.descriptor)
    }

    private func retire(_ fd: Int32) {
        if Glibc.shutdown(fd, Int32(SHUT_WR)) == 0 {
            draining[fd] = ContinuousClock.now + lingerTime
        } else {
            systemClose(fd)
        }
    }

    /// Steps a tunnel; once it is done, logs its line and lets go of its sockets: the
    /// TLS one lingers like a client's; the plain one is closed, reset (RST) when the
    /// TLS side did not end cleanly, so its peer cannot take a cut stream for a whole one.
    private func advance(_ tunnel: Tunnel) {
        tunnel.step()
        guard tunnel.stage == .done else { return }
        tunnels[ObjectIdentifier(tunnel)] = nil
        log(tunnel.logLine)
        if tunnel.tlsDescriptor >= 0 { retire(tunnel.tlsDescriptor) }
        if tunnel.plainDescriptor >= 0 {
            if !tunnel.plainClean {
                var reset = linger(l_onoff: 1, l_linger: 0)
                setsockopt(tunnel.plainDescriptor, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
            }
            systemClose(tunnel.plainDescriptor)
        }
    }

    private func drain(_ fd: Int32) {
        for _ in 0..<16 {  // bounded; a client still sending is read again on the next round
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
            systemClose(fd)  // end of stream or error: the client is gone
            draining[fd] = nil
            return
        }
    }

    private func failure(_ client: Client) -> TLSError {
        client.connection.lastError ?? TLSError(.internalError, "the connection failed", backend: backend.id)
    }

    /// SIGINT/SIGTERM: close the listener, send close_notify to each established client
    /// (one non-blocking attempt), close every socket.
    private func stop(signal: Int32) {
        listener = nil
        var notified = 0
        for client in clients.values {
            if client.phase != .handshaking, client.connection.shutdown() >= 0 { notified += 1 }
            systemClose(client.descriptor)
        }
        for tunnel in tunnels.values {
            if tunnel.stage == .relaying, tunnel.connection.shutdown() >= 0 { notified += 1 }
            if tunnel.tlsDescriptor >= 0 { systemClose(tunnel.tlsDescriptor) }
            if tunnel.plainDescriptor >= 0 { systemClose(tunnel.plainDescriptor) }
        }
        let count = clients.count + tunnels.count
        clients.removeAll()
        tunnels.removeAll()
        for fd in draining.keys { systemClose(fd) }
        draining.removeAll()
        let name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
        log("stopped by \(name): \(count) connection(s) closed, \(notified) with close_notify")
    }

    /// `127.0.0.1:40000` or `[::1]:40000` for log lines.
    private func peerAddress(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard ok == 0 else { return "fd \(fd)" }
        var text = [CChar](repeating: 0, count: 64)
        let port: UInt16
        if Int32(storage.ss_family) == AF_INET6 {
            port = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin6_addr
                    inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
                    return UInt16(bigEndian: pointer.pointee.sin6_port)
                }
            }
        } else {
            port = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin_addr
                    inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
                    return UInt16(bigEndian: pointer.pointee.sin_port)
                }
            }
        }
        let host = text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return Endpoint.format(host: host, port: port)
    }
}
