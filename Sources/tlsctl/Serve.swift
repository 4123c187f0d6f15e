import ArgumentParser
import Foundation
import TLSKit

/// What `tlsctl serve` does with each connection.
enum ServeMode: String, EnumerableFlag {
    /// Send every byte back (the default).
    case echo
    /// Answer each HTTP/1.x request with a small page describing the connection.
    case http

    static func help(for value: ServeMode) -> ArgumentHelp? {
        switch value {
        case .echo: return "Echo every byte back to the client (the default)."
        case .http: return "Answer each HTTP/1.x request with a page naming the backend and the negotiated parameters."
        }
    }
}

/// `--verify-client required|optional`.
enum ClientVerification: String, ExpressibleByArgument, CaseIterable {
    case required
    case optional

    var authentication: TLSClientAuthentication { self == .required ? .required : .optional }
}

/// `tlsctl serve`: a TLS server for many concurrent clients on one thread.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a TLS server: echo bytes, answer HTTP requests or forward to a TCP backend, many clients at once.",
        discussion: """
            Prints "listening on HOST:PORT" on stdout once ready (--port 0 picks a free
            port), after the SHA-256 fingerprint of the certificate it presents. Without
            --cert it presents a self-signed certificate generated at start for localhost,
            127.0.0.1 and ::1 (kept in memory only): pin it by its fingerprint.

            All connections are served by one thread with non-blocking sockets and a poll
            loop driven by each connection's want-read/want-write results. A client that
            sends garbage, stalls or disconnects affects no other client: each failure is
            one line on stderr, and a handshake not finished within --handshake-timeout
            seconds is dropped. SIGINT or SIGTERM closes the listener, sends close_notify
            to the connected clients and exits 0.

            Certificates are reloaded while serving, without dropping a connection: on
            SIGHUP, and every --reload-interval seconds when a file (--cert, --key,
            --ca-file) changed. New handshakes get the new material; connections in flight
            keep theirs; session tickets stay valid across reloads. A reload that fails
            (unreadable file, key that does not match, expired certificate) keeps the
            certificate in use. Each reload is one line on stderr:
              tlsctl: reload (on request): generation 2 in use: CN=example.com until 2027-03-08 10:00:00 UTC
              tlsctl: reload (files changed) FAILED, keeping generation 2: TLSError(OpenSSL) keyCertificateMismatch: …

            With --forward HOST:PORT, serve is a TLS-terminating proxy (like stunnel or
            ghostunnel): once a client's handshake is done (and its certificate verified,
            with --verify-client), it opens a TCP connection to HOST:PORT and relays the
            plaintext both ways. The client's close_notify becomes a TCP half-close
            (shutdown of the write side) towards the backend, the backend's end of stream
            becomes our close_notify, and the other direction goes on until it ends too.
            Neither side is read faster than the other drains (64 KiB buffered per
            direction). A backend that cannot be reached gets the client a close_notify.
            Each connection leaves one line on stderr when it ends:
              tlsctl: 127.0.0.1:50312 -> 127.0.0.1:8080: TLSv1.3 TLS_AES_256_GCM_SHA384, 83 bytes up, 1024 bytes down, closed cleanly

            Examples:
              tlsctl serve --port 4433 --http                 # then: curl -k https://localhost:4433/
              tlsctl serve --port 0 --cert server.pem --key server.key --alpn h2,http/1.1
              tlsctl serve --ca-file clients-ca.pem --verify-client required --echo
              tlsctl serve --port 443 --cert server.pem --key server.key --forward 127.0.0.1:8080
              tlsctl serve --port 443 --cert fullchain.pem --key privkey.pem --reload-interval 60 --forward 127.0.0.1:8080
            """
    )

    @OptionGroup var backendOption: BackendOption

    @Option(help: ArgumentHelp("Address to listen on: an IPv4 or IPv6 address or a name.", valueName: "addr"))
    var host: String = "127.0.0.1"

    @Option(help: ArgumentHelp("TCP port; 0 picks a free one (printed).", valueName: "n"))
    var port: Int = 4433

    @Option(help: ArgumentHelp("PEM certificate chain to present (default: a generated self-signed one); needs --key.", valueName: "pem"))
    var cert: String?

    @Option(help: ArgumentHelp("PEM private key for --cert.", valueName: "pem"))
    var key: String?

    @Option(help: ArgumentHelp("PEM file of CA certificates that verify client certificates; needs --verify-client.", valueName: "pem"))
    var caFile: String?

    @Option(help: ArgumentHelp("Ask clients for a certificate: required (refuse clients without a valid one) or optional (verify it if sent).", valueName: "required|optional"))
    var verifyClient: ClientVerification?

    @Option(help: ArgumentHelp("ALPN protocols to accept, comma-separated, in order of preference. With --http the default is http/1.1.", valueName: "list"))
    var alpn: ALPNList?

    @Option(help: "Lowest TLS version to accept (1.2 or 1.3; default 1.2).")
    var minVersion: VersionArgument?

    @Option(help: "Highest TLS version to accept (1.2 or 1.3; default 1.3).")
    var maxVersion: VersionArgument?

    @Flag var mode: ServeMode?

    @Option(help: ArgumentHelp("Forward each connection's plaintext to this TCP backend (a TLS-terminating proxy) instead of echoing or answering HTTP.", valueName: "host:port"))
    var forward: String?

    @Option(help: ArgumentHelp("Accept N connections in all, then stop accepting and exit 0 once they have finished (default: serve until SIGINT/SIGTERM). It does not cap how many run at once.", valueName: "n"))
    var maxConnections: Int?

    @Option(help: ArgumentHelp("Seconds a client has to complete its handshake before it is dropped.", valueName: "seconds"))
    var handshakeTimeout: Int = 10

    @Option(help: ArgumentHelp("Check --cert, --key and --ca-file every N seconds and reload them when they changed (SIGHUP reloads at once, with or without this).", valueName: "seconds"))
    var reloadInterval: Int?

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        if (cert == nil) != (key == nil) {
            throw ValidationError(cert == nil ? "--key needs --cert" : "--cert needs --key")
        }
        if verifyClient != nil && caFile == nil {
            throw ValidationError("--verify-client needs --ca-file (the CAs that issue client certificates)")
        }
        if caFile != nil && verifyClient == nil {
            throw ValidationError("--ca-file is only used to verify client certificates: add --verify-client required|optional")
        }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        guard handshakeTimeout > 0, handshakeTimeout <= 3600 else {
            throw ValidationError("--handshake-timeout must be 1 to 3600 seconds")
        }
        if let forward {
            _ = try Endpoint.parse(forward)
            if let mode { throw ValidationError("--forward relays to the backend: it cannot be combined with --\(mode.rawValue)") }
        }
        if mode == .http, let alpn, let other = alpn.protocols.first(where: { $0 != "http/1.1" && $0 != "http/1.0" }) {
            throw ValidationError("--http speaks HTTP/1.x only; the ALPN list may not contain \(other)")
        }
        if let reloadInterval {
            guard cert != nil else { throw ValidationError("--reload-interval watches the files of --cert and --key: it needs them") }
            guard (1...86_400).contains(reloadInterval) else { throw ValidationError("--reload-interval must be 1 to 86400 seconds") }
        }
        var scratch = TLSConfiguration()
        try applyVersions(minVersion, maxVersion, to: &scratch)
    }

    func run() throws {
        let backend = try backendOption.resolve()
        let identityLines: [String]
        var configuration: TLSConfiguration
        let leafDER: [UInt8]?
        do {
            if let cert, let key {
                configuration = .makeServerConfiguration(certificateChain: .file(cert), privateKey: .file(key))
                leafDER = (try? String(contentsOfFile: cert, encoding: .utf8)).flatMap(CertificateSummary.firstCertificateDER)
                identityLines = ["certificate: \(cert)"]
            } else {
                let names = ["localhost", "127.0.0.1", "::1"]
                let identity = try backend.makeSelfSignedIdentity(
                    commonName: "localhost", subjectAlternativeNames: names, validityDays: 30)
                configuration = .makeServerConfiguration(identity: identity)
                leafDER = CertificateSummary.firstCertificateDER(pem: identity.certificateChainPEM)
                identityLines = ["certificate: self-signed for \(names.joined(separator: ", ")), generated now, not saved"]
            }
            try applyVersions(minVersion, maxVersion, to: &configuration)
            if let caFile, let verifyClient {
                configuration.trustRoots = .caFile(caFile)
                configuration.clientAuthentication = verifyClient.authentication
            }
            if let alpn {
                configuration.applicationProtocols = alpn.protocols
            } else if mode == .http && forward == nil {
                configuration.applicationProtocols = ["http/1.1"]
            }
            // SIGHUP and --reload-interval rebuild the context from the same configuration
            // (its files read again); each attempt is one log line.
            let reloading = try TLSReloadingContext(backend: backend, configuration: configuration) { event in
                log("\(event)")
            }
            if let reloadInterval { reloading.startWatching(every: .seconds(reloadInterval)) }
            var lines = identityLines
            if let leafDER {
                let info = try backend.certificateInfo(der: leafDER)
                lines.append("SHA-256 fingerprint: \(info.sha256FingerprintText)")
            }
            let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            let service: Service
            if let forward {
                service = .tunnel(.forward, try TunnelTarget.resolve(try Endpoint.parse(forward)))
            } else {
                service = .respond(mode ?? .echo)
            }
            // The loop alone holds the listener: when it drops it (signal, --max-connections
            // reached) the socket closes then, not when this scope ends.
            let loop: ServerLoop, boundPort: UInt16
            do {
                let listener = try TLSListener(host: bare, port: UInt16(port))
                boundPort = listener.port
                loop = try ServerLoop(
                    backend: backend, context: { reloading.current }, reload: { reloading.reload() },
                    listener: listener, service: service,
                    maxConnections: maxConnections, handshakeTimeout: .seconds(handshakeTimeout))
            }
            lines.append("backend: \(backend.id) (\(backend.libraryVersion))")
            if let forward { lines.append("forwarding to \(forward)") }
            if let reloadInterval { lines.append("reloading --cert/--key/--ca-file when they change (checked every \(reloadInterval) s) and on SIGHUP") }
            lines.append("listening on \(Endpoint.format(host: bare, port: boundPort))")
            printFlushed(lines.joined(separator: "\n"))
            try loop.run()
        } catch let error as TLSError {
            fail(describe(error))
        }
    }
}
