#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import TLSKit

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a client and a server in this process over loopback and print the handshake.",
        discussion: """
            Generates a self-signed identity for localhost with the backend, starts a TLS
            server on 127.0.0.1 (a free port), connects a verifying client to it that trusts
            exactly that certificate, exchanges a message, closes both ways with
            close_notify, and prints what was negotiated. Exits 0 on success.
            """
    )

    @OptionGroup var backendOption: BackendOption

    @Option(help: "Highest TLS version to offer (1.2 or 1.3).")
    var maxVersion: String = "1.3"

    func run() throws {
        let backend = try backendOption.resolve()
        let maximum: TLSVersion
        switch maxVersion {
        case "1.2": maximum = .tls12
        case "1.3": maximum = .tls13
        default: throw ValidationError("--max-version must be 1.2 or 1.3")
        }
        do {
            try runDemo(backend: backend, maximum: maximum)
        } catch {
            fail(describe(error))
        }
    }

    private func runDemo(backend: any TLSBackend.Type, maximum: TLSVersion) throws {
        let identity = try backend.makeSelfSignedIdentity(
            commonName: "localhost", subjectAlternativeNames: ["localhost", "127.0.0.1"], validityDays: 1)
        var serverConfiguration = TLSConfiguration.makeServerConfiguration(identity: identity)
        serverConfiguration.applicationProtocols = ["h2", "http/1.1"]
        serverConfiguration.maximumTLSVersion = maximum
        let serverContext = try backend.makeContext(serverConfiguration)

        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .certificates([.pem(identity.certificateChainPEM)])
        clientConfiguration.serverName = "localhost"
        clientConfiguration.applicationProtocols = ["h2"]
        clientConfiguration.maximumTLSVersion = maximum
        let clientContext = try backend.makeContext(clientConfiguration)

        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let server = ServerThread(listener: listener, context: serverContext)
        server.start()

        let client = try TLSSocket.connect(
            host: "127.0.0.1", port: listener.port, context: clientContext, serverName: "localhost",
            timeout: .seconds(10))
        let message = Array("hello from the TLSKit demo".utf8)
        try client.write(message)
        var echoed: [UInt8] = []
        while echoed.count < message.count {
            let chunk = try client.read()
            if chunk.isEmpty { break }
            echoed += chunk
        }
        try client.shutdown(waitForPeer: true)
        let serverReport = try server.join()
        let connection = client.connection

        print("TLSKit demo: in-process client and server over 127.0.0.1:\(listener.port)")
        print("backend:       \(backend.id) (\(backend.libraryVersion))")
        print("protocol:      \(connection.negotiatedVersion.map { "\($0)" } ?? "?")")
        print("cipher suite:  \(connection.cipherSuite ?? "?")")
        print("ALPN:          \(connection.negotiatedApplicationProtocol ?? "none")")
        print("SNI:           \(serverReport.serverName ?? "none") (as seen by the server)")
        print("verification:  \(connection.peerVerification.map { "\($0)" } ?? "?")")
        print("peer chain:    \(connection.peerCertificateChain.count) certificate(s), leaf \(connection.peerCertificateChain.first?.count ?? 0) bytes DER")
        print("echo:          \(echoed == message ? "ok" : "MISMATCH") (\(message.count) bytes)")
        print("shutdown:      close_notify sent and received on both sides")
        guard echoed == message else { fail("the echoed bytes differ from what was sent") }
    }
}

/// The demo's server: accepts one connection, echoes until close_notify, closes.
/// `@unchecked Sendable`: `result` is written by the server thread and read only after
/// `pthread_join`, which orders the two.
final class ServerThread: @unchecked Sendable {
    struct Report: Sendable { var serverName: String? }
    private let listener: TLSListener
    private let context: TLSContext
    private var result: Result<Report, any Error> = .failure(TLSError(.internalError, "server did not run", backend: .tlsKit))
    private var thread = pthread_t()

    init(listener: TLSListener, context: TLSContext) {
        self.listener = listener
        self.context = context
    }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { argument in
            let server = Unmanaged<ServerThread>.fromOpaque(argument!).takeRetainedValue()
            server.result = Result { try server.serve() }
            return nil
        }, box)
    }

    func join() throws -> Report {
        pthread_join(thread, nil)
        return try result.get()
    }

    private func serve() throws -> Report {
        let socket = try listener.accept(context: context, timeout: .seconds(10))
        while true {
            let bytes = try socket.read()
            if bytes.isEmpty { break }
            try socket.write(bytes)
        }
        try socket.shutdown()
        return Report(serverName: socket.connection.requestedServerName)
    }
}
