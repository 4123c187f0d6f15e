import ArgumentParser
import TLSKit
import TLSCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `tlsctl connect HOST:PORT`: a TLS client that copies stdin to the connection and the
/// connection to stdout, like `openssl s_client -quiet` but with TLSKit's verification
/// and error categories.
struct Connect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to a TLS server and copy stdin to it and its replies to stdout.",
        discussion: """
            Connects over TCP, completes the handshake with full verification (system trust
            store, or --ca-file; host name from HOST or --server-name), prints a summary on
            stderr (protocol, cipher suite, ALPN, peer subject and SANs, verification
            verdict), then copies stdin to the connection and the connection to stdout.
            At the end of stdin it sends close_notify and keeps printing what the server
            sends until the server closes too. If the server closes first, tlsctl goes on
            sending stdin until it ends (TLS half-close).

            With --listen PORT, connect is the client side of a TLS tunnel instead (like
            stunnel's client mode): it listens on --listen-host:PORT (127.0.0.1 by default;
            0 picks a free port) in plaintext, prints "listening on HOST:PORT", and relays
            each accepted connection over a new TLS connection to HOST:PORT, verified as
            above. Half-close is preserved both ways (end of stream from the local client
            → close_notify; the server's close_notify → TCP half-close towards the local
            client); a TLS side that ends without close_notify resets the local connection.
            Each connection leaves one line on stderr when it ends.

            Exit status: 0 both sides closed cleanly; 1 the connection, handshake or
            verification failed, or the server vanished without close_notify (one line on
            stderr, e.g. "tlsctl: certificate verification failed: hostnameMismatch (…)");
            2 a usage error.

            Examples:
              printf 'GET / HTTP/1.1\\r\\nHost: example.com\\r\\nConnection: close\\r\\n\\r\\n' | tlsctl connect example.com:443
              tlsctl connect [::1]:4433 --ca-file ca.pem --server-name localhost --alpn h2,http/1.1
              tlsctl connect 127.0.0.1:4433 --ca-file ca.pem --cert client.pem --key client.key
              tlsctl connect db.example:5433 --listen 5432     # then: psql -h 127.0.0.1 -p 5432
            """
    )

    @OptionGroup var backendOption: BackendOption

    @Argument(help: ArgumentHelp("The server: name:port, 192.0.2.1:port or [::1]:port.", valueName: "host:port"))
    var target: String

    @Option(help: ArgumentHelp("The name sent in SNI and checked against the certificate (default: HOST).", valueName: "name"))
    var serverName: String?

    @Option(help: ArgumentHelp("PEM file of CA certificates that verify the server (default: the system store).", valueName: "pem"))
    var caFile: String?

    @Option(help: ArgumentHelp("PEM certificate (chain) to present if the server asks for one; needs --key.", valueName: "pem"))
    var cert: String?

    @Option(help: ArgumentHelp("PEM private key for --cert.", valueName: "pem"))
    var key: String?

    @Option(help: ArgumentHelp("ALPN protocols to offer, comma-separated, e.g. h2,http/1.1.", valueName: "list"))
    var alpn: ALPNList?

    @Option(help: "Lowest TLS version to offer (1.2 or 1.3; default 1.2).")
    var minVersion: VersionArgument?

    @Option(help: "Highest TLS version to offer (1.2 or 1.3; default 1.3).")
    var maxVersion: VersionArgument?

    @Flag(help: "INSECURE: accept any certificate from anyone (no chain or host-name check).")
    var insecure = false

    @Flag(name: .shortAndLong, help: "Do not print the connection summary on stderr.")
    var quiet = false

    @Option(help: ArgumentHelp("Seconds allowed for the TCP connect and the handshake, and for the server to close after ours.", valueName: "seconds"))
    var timeout: Int = 10

    @Option(help: ArgumentHelp("Listen on this local port (0: a free one, printed) and tunnel each plaintext connection over a new TLS connection to HOST:PORT.", valueName: "port"))
    var listen: Int?

    @Option(help: ArgumentHelp("The address --listen binds (an IPv4 or IPv6 address or a name).", valueName: "addr"))
    var listenHost: String?

    @Option(help: ArgumentHelp("With --listen: accept N connections in all, then exit 0 once they have finished.", valueName: "n"))
    var maxConnections: Int?

    func validate() throws {
        _ = try Endpoint.parse(target)
        if (cert == nil) != (key == nil) {
            throw ValidationError(cert == nil ? "--key needs --cert" : "--cert needs --key")
        }
        if insecure && caFile != nil {
            throw ValidationError("--insecure turns verification off, so --ca-file would be ignored: use one or the other")
        }
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be 1 to 86400 seconds") }
        var scratch = TLSConfiguration.makeClientConfiguration()
        try applyVersions(minVersion, maxVersion, to: &scratch)
        if let serverName, serverName.isEmpty { throw ValidationError("--server-name is empty") }
        if let listen {
            guard (0...65_535).contains(listen) else { throw ValidationError("--listen must be a port from 0 to 65535") }
            if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        } else if listenHost != nil || maxConnections != nil {
            throw ValidationError("\(listenHost != nil ? "--listen-host" : "--max-connections") needs --listen PORT")
        }
    }

    func run() throws {
        let backend = try backendOption.resolve()
        let endpoint = try Endpoint.parse(target)
        var configuration = TLSConfiguration.makeClientConfiguration()
        try applyVersions(minVersion, maxVersion, to: &configuration)
        if let caFile { configuration.trustRoots = .caFile(caFile) }
        if let cert, let key {
            configuration.certificateChain = .file(cert)
            configuration.privateKey = .file(key)
        }
        if let alpn { configuration.applicationProtocols = alpn.protocols }
        if insecure { configuration.certificateVerification = .insecureNoVerification }
        let name = serverName ?? endpoint.host
        configuration.serverName = name

        if let listen {
            do {
                let context = try backend.makeContext(configuration)
                let target = try TunnelTarget.resolve(endpoint)
                let host = listenHost ?? "127.0.0.1"
                let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
                let listener = try TLSListener(host: bare, port: UInt16(listen))
                let loop = try ServerLoop(
                    backend: backend, context: { context }, listener: listener, service: .tunnel(.listen, target),
                    maxConnections: maxConnections, handshakeTimeout: .seconds(timeout))
                printFlushed("tunnelling to \(endpoint) with \(backend.id) (\(backend.libraryVersion))\n"
                             + "listening on \(Endpoint.format(host: bare, port: listener.port))")
                try loop.run()
            } catch {
                fail(describe(error))
            }
            return
        }
        let socket: TLSSocket
        do {
            let context = try backend.makeContext(configuration)
            socket = try TLSSocket.connect(host: endpoint.host, port: endpoint.port, context: context,
                                           serverName: name, timeout: .seconds(timeout))
        } catch {
            fail(describe(error))
        }
        if !quiet { printSummary(socket.connection, backend: backend, endpoint: endpoint) }
        var relay = Relay(connection: socket.connection, descriptor: socket.descriptor, closeTimeout: .seconds(timeout))
        do {
            try relay.run()
        } catch {
            fail(describe(error))
        }
        socket.close()
    }

    private func printSummary(_ connection: TLSConnection, backend: any TLSBackend.Type, endpoint: Endpoint) {
        var lines = ["connected to \(endpoint) with \(backend.id) (\(backend.libraryVersion))"]
        lines.append("protocol:      \(connection.negotiatedVersion.map { "\($0)" } ?? "?")")
        lines.append("cipher suite:  \(connection.cipherSuite ?? "?")")
        lines.append("ALPN:          \(connection.negotiatedApplicationProtocol ?? "none")")
        lines += CertificateSummary.lines(chain: connection.peerCertificateChain, backend: backend, label: "peer")
        lines.append("verification:  \(connection.peerVerification.map { "\($0)" } ?? "?")")
        var standardError = StandardError()
        print(lines.joined(separator: "\n"), to: &standardError)
    }
}

/// Copies stdin to a connected TLS session and the session to stdout, on one thread:
/// `poll(2)` on stdin and the non-blocking socket, each TLS call retried when the
/// socket is ready in the direction its want-read / want-write result named.
struct Relay {
    let connection: TLSConnection
    let descriptor: Int32
    /// After our close_notify: the longest silence from the server before giving up.
    let closeTimeout: Duration

    /// stdin bytes not yet accepted by `write` (a retry passes the same bytes).
    private var pending: [UInt8] = []
    private var stdinOpen = true
    private var peerClosed = false
    private var closeNotifySent = false
    /// What each pending TLS call waits for on the socket (POLLIN / POLLOUT / 0).
    private var readWaits: Int16 = 0
    private var writeWaits: Int16 = 0
    private var shutdownWaits: Int16 = 0
    private var buffer = [UInt8](repeating: 0, count: 16_384)

    init(connection: TLSConnection, descriptor: Int32, closeTimeout: Duration) {
        self.connection = connection
        self.descriptor = descriptor
        self.closeTimeout = closeTimeout
    }

    private func events(for code: TLSResultCode) -> Int16 {
        Int16(code == .wantWrite ? POLLOUT : POLLIN)
    }

    private func failure(_ what: String) -> TLSError {
        connection.lastError ?? TLSError(.internalError, "\(what) failed", backend: connection.context.backendID)
    }

    /// Runs until stdin has ended (close_notify sent) and the server has closed.
    mutating func run() throws {
        var quietDeadline: ContinuousClock.Instant?
        while true {
            // 1. Everything the server sent that can be decrypted now, to stdout.
            if !peerClosed {
                readWaits = 0
                while true {
                    let result = buffer.withUnsafeMutableBytes { connection.read(into: $0) }
                    if result > 0 {
                        if !writeAll(1, Array(buffer[0..<Int(result)])) {
                            throw TLSError(.transportFailure, "cannot write to stdout", backend: .tlsctl, errno: errno)
                        }
                        quietDeadline = quietDeadline.map { _ in ContinuousClock.now + closeTimeout }
                        continue
                    }
                    let code = connection.error(for: result)
                    if code == .wantRead || code == .wantWrite { readWaits = events(for: code); break }
                    if code == .zeroReturn { peerClosed = true; break }
                    throw failure("read")
                }
            }
            // 2. stdin bytes to the server.
            if !pending.isEmpty {
                let result = connection.write(pending)
                let code = connection.error(for: result)
                if result > 0 {
                    pending.removeAll(keepingCapacity: true)
                    writeWaits = 0
                } else if code == .wantRead || code == .wantWrite {
                    writeWaits = events(for: code)
                } else {
                    throw failure("write")
                }
            }
            // 3. At the end of stdin, close_notify (once; a want result is retried).
            if !stdinOpen && pending.isEmpty && !closeNotifySent {
                let result = connection.shutdown()
                let code = connection.error(for: result)
                if result >= 0 {
                    closeNotifySent = true
                    shutdownWaits = 0
                    quietDeadline = ContinuousClock.now + closeTimeout
                } else if code == .wantRead || code == .wantWrite {
                    shutdownWaits = events(for: code)
                } else {
                    throw failure("shutdown")
                }
            }
            if !stdinOpen && pending.isEmpty && closeNotifySent && peerClosed { return }

            // 4. Wait for stdin or the socket, in the directions the TLS calls asked for.
            var entries: [pollfd] = []
            let watchStdin = stdinOpen && pending.isEmpty
            if watchStdin { entries.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            let socketEvents = (peerClosed ? 0 : readWaits) | writeWaits | shutdownWaits
            // Nothing asked of the socket (the server closed and we only wait for stdin):
            // leave it out, or a hung-up socket would wake poll at once, over and over.
            entries.append(pollfd(fd: socketEvents == 0 ? -1 : descriptor, events: socketEvents, revents: 0))
            var milliseconds: Int32 = -1
            if let quietDeadline {
                let left = quietDeadline - ContinuousClock.now
                if left <= .zero {
                    throw TLSError(.timedOut, "the server did not close the connection within \(closeTimeout) of our close_notify",
                                   backend: connection.context.backendID)
                }
                milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            }
            let ready = poll(&entries, nfds_t(entries.count), milliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                throw TLSError(.transportFailure, "poll: \(String(cString: strerror(errno)))", backend: .tlsctl, errno: errno)
            }
            if watchStdin && entries[0].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { systemRead(0, $0.baseAddress, $0.count) }
                if n > 0 {
                    pending = Array(buffer[0..<n])
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    stdinOpen = false  // end of input (or an unreadable stdin: nothing more to send)
                }
            }
        }
    }
}
