#if canImport(Glibc)
package import Glibc
#elseif canImport(Musl)
package import Musl
#endif

/// A TLS connection over a TCP socket, driven to completion for the caller: the
/// blocking helpers, written once over the ``TLSConnection`` contract.
///
/// Every operation waits with `poll(2)` on the want-read / want-write results, so the
/// helpers work whether the descriptor is blocking or not, and honour ``timeout``.
///
/// Sockets the helpers create (``connect(host:port:context:serverName:timeout:noDelay:prepare:)``)
/// or accept (``TLSListener``) have `TCP_NODELAY` set by default, as SwiftNIO's
/// bootstraps and Go's `net` do: a request or reply written as one small record goes
/// out at once instead of waiting, under Nagle's algorithm, for the acknowledgement of
/// the segment before it (up to the peer's delayed-ACK time, ~40 ms on Linux). Pass
/// `noDelay: false` to keep Nagle's algorithm. ``accept(descriptor:context:timeout:)``
/// leaves the options of a socket you accepted yourself as they are.
///
/// ```swift
/// let socket = try TLSSocket.connect(host: "example.com", port: 443, context: context)
/// try socket.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
/// let reply = try socket.read()
/// ```
public final class TLSSocket {
    /// The TLS connection, for its negotiated parameters.
    public let connection: TLSConnection
    /// The socket descriptor. Owned by this object and closed by ``close()`` / deinit.
    public let descriptor: Int32
    /// The longest wait for the peer in any one operation; nil waits forever.
    public var timeout: Duration?
    private var closed = false

    private init(connection: TLSConnection, descriptor: Int32, timeout: Duration?) {
        self.connection = connection
        self.descriptor = descriptor
        self.timeout = timeout
    }

    deinit { close() }

    /// Connects to `host:port` over TCP and completes the client handshake.
    /// - Parameters:
    ///   - host: a DNS name, an IPv4 address, or an IPv6 address (with or without brackets).
    ///   - serverName: the name for SNI and verification; defaults to the context's
    ///     ``TLSConfiguration/serverName``, then to `host`.
    ///   - timeout: the longest wait in the TCP connect, the handshake, and later reads
    ///     and writes.
    ///   - noDelay: set `TCP_NODELAY` on the socket (the default): each write is sent at
    ///     once. `false` keeps Nagle's algorithm, which holds a small write while an
    ///     earlier segment is unacknowledged.
    ///   - prepare: called with the connection before the handshake, e.g. to
    ///     ``TLSConnection/setSession(_:)``.
    public static func connect(
        host: String, port: UInt16, context: TLSContext, serverName: String? = nil, timeout: Duration? = nil,
        noDelay: Bool = true, prepare: (TLSConnection) throws -> Void = { _ in }
    ) throws -> TLSSocket {
        let fd = try TCP.dial(host: host, port: port, timeout: timeout, noDelay: noDelay, backend: context.backendID)
        let connection = context.makeConnection()
        connection.serverName = serverName ?? context.configuration.serverName ?? host
        let socket = TLSSocket(connection: connection, descriptor: fd, timeout: timeout)
        try connection.setTransport(.socket(fd))
        try prepare(connection)
        _ = try socket.drive("handshake") { connection.connect() }
        return socket
    }

    /// Completes the server handshake on an accepted socket, taking ownership of it.
    /// Its socket options are left as they are (``TLSListener`` sets `TCP_NODELAY` on
    /// the sockets it accepts; a socket you accepted yourself keeps what you set).
    public static func accept(
        descriptor: Int32, context: TLSContext, timeout: Duration? = nil
    ) throws -> TLSSocket {
        let connection = context.makeConnection()
        let socket = TLSSocket(connection: connection, descriptor: descriptor, timeout: timeout)
        // The socket is ours now: with a time-out it must not block inside the library,
        // or a silent peer would hold a blocking recv() forever; poll() does the waiting.
        if timeout != nil { _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK) }
        try connection.setTransport(.socket(descriptor))
        _ = try socket.drive("handshake") { connection.accept() }
        return socket
    }

    /// Reads up to `maxBytes` of application data, waiting until some arrive.
    /// - Returns: the bytes; an empty array once the peer has sent close_notify.
    /// - Throws: ``TLSError`` (unexpected EOF when the peer vanished without close_notify).
    public func read(maxBytes: Int = 16_384) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(1, maxBytes))
        let count = try drive("read") { connection.read(into: &buffer) }
        return Array(buffer[0..<Int(count)])
    }

    /// Writes all of `bytes`, waiting as needed.
    public func write(_ bytes: [UInt8]) throws {
        if bytes.isEmpty { return }
        _ = try drive("write") { connection.write(bytes) }
    }

    /// Sends close_notify; with `waitForPeer`, also waits for the peer's.
    public func shutdown(waitForPeer: Bool = false) throws {
        var result = try drive("shutdown") { connection.shutdown() }
        if waitForPeer && result == 0 {
            result = try drive("shutdown") { connection.shutdown() }
        }
    }

    /// Closes the descriptor (without close_notify; call ``shutdown(waitForPeer:)`` first).
    public func close() {
        if closed { return }
        closed = true
        systemClose(descriptor)
    }

    /// Calls `operation` until it stops asking for I/O, polling in between.
    /// A 0 result with ``TLSResultCode/zeroReturn`` is returned as 0 (clean close).
    private func drive(_ what: String, _ operation: () -> Int32) throws -> Int32 {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let result = operation()
            let code = connection.error(for: result)
            switch code {
            case .none, .zeroReturn:
                if code == .zeroReturn && what == "handshake" {
                    throw TLSError(.closedByPeer, "the peer closed the session during the handshake",
                                   backend: connection.context.backendID)
                }
                return max(result, 0)
            case .wantRead, .wantWrite:
                try TCP.wait(descriptor, forWriting: code == .wantWrite, until: deadline,
                             what: what, backend: connection.context.backendID)
            case .wantRetryVerify:
                // The custom verification callback answers later: sleep until it does
                // (woken by its completion), never spin.
                let left = deadline.map { ContinuousClock.now.duration(to: $0) }
                guard connection.waitForVerification(timeout: left.map { max($0, .zero) }) else {
                    throw TLSError(.timedOut, "\(what) timed out waiting for the custom verification callback's answer",
                                   backend: connection.context.backendID)
                }
            case .wantClientHello:
                // The server identity selector answers later: sleep until it does.
                let left = deadline.map { ContinuousClock.now.duration(to: $0) }
                guard connection.waitForClientHello(timeout: left.map { max($0, .zero) }) else {
                    throw TLSError(.timedOut, "\(what) timed out waiting for the server identity selector's answer",
                                   backend: connection.context.backendID)
                }
            case .ssl, .syscall:
                throw connection.lastError
                    ?? TLSError(.internalError, "\(what) failed", backend: connection.context.backendID)
            }
        }
    }
}

/// A listening TCP socket whose accepted connections become ``TLSSocket``s.
public final class TLSListener: Sendable {
    /// The listening descriptor.
    public let descriptor: Int32
    /// The bound port (useful after binding port 0).
    public let port: UInt16
    /// The bound address.
    public let host: String
    /// Whether accepted sockets get `TCP_NODELAY` (see ``init(host:port:backlog:noDelay:)``).
    public let noDelay: Bool

    /// Binds and listens. Port 0 picks a free port.
    /// - Parameter noDelay: set `TCP_NODELAY` on every accepted socket (the default), so
    ///   that each reply is sent at once; `false` keeps Nagle's algorithm on them.
    public init(host: String = "127.0.0.1", port: UInt16 = 0, backlog: Int32 = 512, noDelay: Bool = true) throws {
        (descriptor, self.port) = try TCP.makeListener(host: host, port: port, backlog: backlog, backend: .tlsKit)
        self.host = host
        self.noDelay = noDelay
    }

    deinit { systemClose(descriptor) }

    /// Accepts one TCP connection and completes the server handshake on it.
    public func accept(context: TLSContext, timeout: Duration? = nil) throws -> TLSSocket {
        let fd = try acceptDescriptor(timeout: timeout)
        do {
            return try TLSSocket.accept(descriptor: fd, context: context, timeout: timeout)
        } catch {
            // TLSSocket owns fd once created; if creation failed before that, close it here.
            throw error
        }
    }

    /// Accepts one TCP connection and completes the server handshake on it, with the
    /// material a ``TLSReloadingContext`` holds at this moment (a reload during the
    /// handshake does not change it).
    public func accept(context reloading: TLSReloadingContext, timeout: Duration? = nil) throws -> TLSSocket {
        try accept(context: reloading.current, timeout: timeout)
    }

    /// Accepts one TCP connection without TLS (for callers that drive the handshake
    /// themselves). The descriptor is non-blocking, close-on-exec, and has `TCP_NODELAY`
    /// unless the listener was made with `noDelay: false`.
    public func acceptDescriptor(timeout: Duration? = nil) throws -> Int32 {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            // Close-on-exec from birth: with accept then fcntl, a process spawned by another
            // thread between the two would inherit the connection.
            let fd = TCP.accept4(descriptor, nil, nil, Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue))
            if fd >= 0 {
                if noDelay { TCP.setNoDelay(fd) }
                return fd
            }
            let error = errno
            switch error {
            case EINTR, ECONNABORTED: continue
            case EAGAIN, EWOULDBLOCK:
                try TCP.wait(descriptor, forWriting: false, until: deadline, what: "accept", backend: .tlsKit)
            default:
                throw TLSError(.transportFailure, "accept: \(String(cString: strerror(error)))", backend: .tlsKit, errno: error)
            }
        }
    }
}

/// TCP plumbing for the helpers, and for tlsctl's tunnels (package access).
package enum TCP {
    /// `accept4(2)`, which Glibc's Swift module does not export (it is declared under
    /// `_GNU_SOURCE`); glibc has had it since 2.10, Musl since 0.9.
    static let accept4: @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32 = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "accept4") else {  // RTLD_DEFAULT
            fatalError("TLSKit: the C library has no accept4(2)")
        }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafeMutablePointer<sockaddr>?,
                                                          UnsafeMutablePointer<socklen_t>?, Int32) -> Int32).self)
    }()

    static func failure(_ what: String, _ error: Int32, backend: TLSBackendID) -> TLSError {
        TLSError(.transportFailure, "\(what): \(String(cString: strerror(error)))", backend: backend, errno: error)
    }

    /// Waits until `fd` is readable or writable, or the deadline passes.
    static func wait(_ fd: Int32, forWriting: Bool, until deadline: ContinuousClock.Instant?,
                     what: String, backend: TLSBackendID) throws {
        var entry = pollfd(fd: fd, events: Int16(forWriting ? POLLOUT : POLLIN), revents: 0)
        while true {
            var milliseconds: Int32 = -1
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero {
                    throw TLSError(.timedOut, "\(what) timed out waiting for the peer", backend: backend)
                }
                let (seconds, attoseconds) = left.components
                milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            }
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready == 0 { continue }  // the deadline check above throws
            if errno == EINTR { continue }
            throw failure("poll", errno, backend: backend)
        }
    }

    /// Sets `TCP_NODELAY`: small writes leave at once, not after the previous segment's ACK.
    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// One resolved address: what `connect(2)` and `bind(2)` take.
    package struct Address {
        package var storage: sockaddr_storage
        package var length: socklen_t
        package var family: Int32 { Int32(storage.ss_family) }

        /// Calls `body` with the address as the C functions take it.
        package func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
            withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        }
    }

    /// Resolves `host` (a DNS name, or an IPv4 or IPv6 literal, brackets allowed) to its
    /// TCP addresses in `getaddrinfo(3)`'s order; `passive` for an address to bind.
    package static func resolve(host: String, port: UInt16, passive: Bool = false, backend: TLSBackendID) throws -> [Address] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        if passive { hints.ai_flags = AI_PASSIVE }
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(TLSHostName.verificationName(host), String(port), &hints, &list)
        guard status == 0, let list else {
            throw TLSError(.transportFailure, "cannot resolve \(host): \(String(cString: gai_strerror(status)))", backend: backend)
        }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let info = cursor {
            cursor = info.pointee.ai_next
            var storage = sockaddr_storage()
            let length = min(info.pointee.ai_addrlen, socklen_t(MemoryLayout<sockaddr_storage>.size))
            withUnsafeMutableBytes(of: &storage) {
                $0.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(length)))
            }
            addresses.append(Address(storage: storage, length: length))
        }
        return addresses
    }

    /// Resolves and connects, non-blocking, honouring the timeout.
    static func dial(host: String, port: UInt16, timeout: Duration?, noDelay: Bool, backend: TLSBackendID) throws -> Int32 {
        let addresses = try resolve(host: host, port: port, backend: backend)
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var lastError = TLSError(.transportFailure, "no address for \(host)", backend: backend)
        for address in addresses {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue), 0)
            if fd < 0 { lastError = failure("socket", errno, backend: backend); continue }
            if noDelay { setNoDelay(fd) }
            if address.withSockaddr({ connect(fd, $0, $1) }) == 0 { return fd }
            guard errno == EINPROGRESS else {
                lastError = failure("connect to \(host):\(port)", errno, backend: backend)
                systemClose(fd)
                continue
            }
            do {
                try wait(fd, forWriting: true, until: deadline, what: "connect to \(host):\(port)", backend: backend)
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 { return fd }
                lastError = failure("connect to \(host):\(port)", error, backend: backend)
            } catch let error as TLSError {
                lastError = error
            }
            systemClose(fd)
        }
        throw lastError
    }

    /// Binds a listening socket (IPv4 or IPv6 literal, or a name resolved to its first address).
    static func makeListener(host: String, port: UInt16, backlog: Int32, backend: TLSBackendID) throws -> (Int32, UInt16) {
        guard let address = try resolve(host: host, port: port, passive: true, backend: backend).first else {
            throw TLSError(.transportFailure, "no address for \(host)", backend: backend)
        }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw failure("socket", errno, backend: backend) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            let error = errno
            systemClose(fd)
            throw failure("bind \(host):\(port)", error, backend: backend)
        }
        guard listen(fd, backlog) == 0 else {
            let error = errno
            systemClose(fd)
            throw failure("listen", error, backend: backend)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let family = Int32(storage.ss_family)
        let boundPort: UInt16 = withUnsafePointer(to: &storage) { pointer in
            if family == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        return (fd, boundPort)
    }
}
