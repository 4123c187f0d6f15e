import Foundation
import HelloHummingbird
import HummingbirdTLSKit
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TLSKit

/// Hands every log message, from debug up, to `sink`.
struct CapturingLogHandler: LogHandler {
    let sink: @Sendable (String) -> Void
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { sink(event.message.description) }
}

/// Runs the hello-hummingbird application for the duration of `body`, on a free port;
/// with `log`, the application's log messages (debug and up) go there.
func withHelloServer<R>(_ options: HelloHummingbirdOptions, log: (@Sendable (String) -> Void)? = nil,
                        _ body: (Int) async throws -> R) async throws -> R {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    var logger = Logger(label: "hello-hummingbird-test")
    logger.logLevel = .warning
    if let log { logger = Logger(label: "hello-hummingbird-test") { _ in CapturingLogHandler(sink: log) } }
    let app = try makeHelloApplication(options, logger: logger) { port in continuation.yield(port) }
    // The stream ends when the server does: a server that fails to start (bind…) throws
    // its error here instead of leaving the test waiting for a port.
    let server = Task {
        defer { continuation.finish() }
        try await app.run()
    }
    defer { server.cancel() }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        try await server.value
        throw CancellationError()
    }
    let result = try await body(port)
    server.cancel()
    _ = await server.result
    return result
}

/// curl's arguments for https://localhost:PORT/ with localhost resolved to 127.0.0.1 by
/// curl itself (`--resolve`), not by /etc/hosts: the server listens on 127.0.0.1 only, and
/// a resolver that answers ::1 first, or not at all, must not change the test.
func curlLocalhost(_ port: Int) -> [String] {
    ["--resolve", "localhost:\(port):127.0.0.1", "https://localhost:\(port)/"]
}

/// The TLS library curl reports in `curl --version` ("OpenSSL/3.0.19"), which Debian's
/// curl also writes into its TLS error lines.
func curlSSLLibrary() async throws -> String {
    let version = try await run("curl", ["--version"])
    let words = version.output.split(separator: "\n").first?.split(separator: " ") ?? []
    return try #require(words.first { $0.hasPrefix("OpenSSL/") }.map(String.init), "\(version.output)")
}

/// The values once `box` holds `count` of them (the server logs on its own event loop,
/// maybe just after the client is done), or what it holds after 30 s.
func waitFor(_ box: NIOLockedValueBox<[String]>, count: Int) async throws -> [String] {
    let deadline = ContinuousClock.now + .seconds(30)
    while box.withLockedValue({ $0.count }) < count && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(10))
    }
    return box.withLockedValue { $0 }
}

@Suite("hello-hummingbird: HTTPS over TLSKitNIO", .timeLimit(.minutes(10)))
struct HummingbirdTests {
    @Test("curl --http1.1 and --http2: the response names the protocol and the backend", arguments: allBackends)
    func curlBothProtocols(backend: Backend) async throws {
        let ids = try Identities(backend)
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let ca = try dir.write("server.pem", ids.server.certificateChainPEM)
        try await withHelloServer(.init(backend: backend.type, identity: ids.server)) { port in
            let url = curlLocalhost(port)
            let h1 = try await run("curl", ["-sS", "--http1.1", "--cacert", ca, "-w", "|%{http_version}"] + url)
            #expect(h1.status == 0, "\(h1.error)")
            #expect(h1.output == "hello over http/1.1 from TLSKit \(backend.name) (TLSv1.3)\n|1.1")
            let h2 = try await run("curl", ["-sS", "--http2", "--cacert", ca, "-w", "|%{http_version}"] + url)
            #expect(h2.status == 0, "\(h2.error)")
            #expect(h2.output == "hello over h2 from TLSKit \(backend.name) (TLSv1.3)\n|2")
        }
    }

    @Test("openssl s_client -alpn h2 negotiates h2 and verifies the chain", arguments: allBackends)
    func opensslALPN(backend: Backend) async throws {
        let ids = try Identities(backend)
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let ca = try dir.write("server.pem", ids.server.certificateChainPEM)
        try await withHelloServer(.init(backend: backend.type, identity: ids.server)) { port in
            let result = try await run("openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost",
                                                   "-alpn", "h2", "-CAfile", ca, "-verify_return_error"])
            let text = result.output + result.error
            #expect(result.status == 0, "\(text)")
            #expect(text.contains("ALPN protocol: h2"), "\(text)")
            #expect(text.contains("Verify return code: 0 (ok)"), "\(text)")
            #expect(text.contains("New, TLSv1.3, Cipher is "), "\(text)")
        }
    }

    @Test("a TLSKitNIO client of each backend, HTTP/1.1 by ALPN", arguments: backendPairs)
    func nioClient(client: Backend, server: Backend) async throws {
        let ids = try Identities(server)
        try await withHelloServer(.init(backend: server.type, identity: ids.server)) { port in
            let context = try clientContext(client, trusting: ids.server, alpn: ["http/1.1"])
            let (alpn, response) = try await tlsKitExchange(
                port: port, context: context, request: "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(alpn == "http/1.1")
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response)")
            #expect(response.hasSuffix("\r\n\r\nhello over http/1.1 from TLSKit \(server.name) (TLSv1.3)\n"), "\(response)")
        }
    }

    @Test("mutual TLS: the client's subject reaches the route; a wrong client certificate is refused", arguments: allBackends)
    func mutualTLS(backend: Backend) async throws {
        let ids = try Identities(backend)
        let dir = try TemporaryDirectory(); defer { dir.remove() }
        let ca = try dir.write("server.pem", ids.server.certificateChainPEM)
        let cert = try dir.write("client.pem", ids.client.certificateChainPEM)
        let key = try dir.write("client.key", ids.client.privateKeyPEM)
        let wrongCert = try dir.write("stranger.pem", ids.stranger.certificateChainPEM)
        let wrongKey = try dir.write("stranger.key", ids.stranger.privateKeyPEM)
        let options = HelloHummingbirdOptions(backend: backend.type, identity: ids.server, clientCAPEM: ids.client.certificateChainPEM)
        let ssl = try await curlSSLLibrary()
        // The server's side of each refusal: the adapter logs the TLSKit handler's error.
        let prefix = "TLS handshake failed: "
        let serverErrors = NIOLockedValueBox<[String]>([])
        try await withHelloServer(options, log: { message in
            if message.hasPrefix(prefix) { serverErrors.withLockedValue { $0.append(String(message.dropFirst(prefix.count))) } }
        }) { port in
            let url = curlLocalhost(port)
            let good = try await run("curl", ["-sS", "--http2", "--cacert", ca, "--cert", cert, "--key", key] + url)
            #expect(good.status == 0, "\(good.error)")
            #expect(good.output == "hello over h2 from TLSKit \(backend.name) (TLSv1.3), client CN=example-client\n")
            // TLS 1.3: curl's handshake completes before the server judges its certificate;
            // the server's alert ends the first read (CURLE_RECV_ERROR, 56). A lone
            // self-signed certificate nobody trusts: unknown_ca. HTTP/1.1 on purpose: with
            // --http2 curl writes its connection preface before it reads the peer's address,
            // and when the server has already closed, the reset that preface draws makes
            // that getpeername fail first ((55) ... errno 107), a race in curl, not TLS.
            let wrong = try await run("curl", ["-sS", "--http1.1", "--cacert", ca, "--cert", wrongCert, "--key", wrongKey] + url)
            #expect(wrong.status == 56, "\(wrong.error)")
            #expect(wrong.error == "curl: (56) OpenSSL SSL_read: \(ssl): error:0A000418:SSL routines::tlsv1 alert unknown ca, errno 0\n")
            #expect(wrong.output == "")
            // TLSError's description up to the backend library's own text.
            let wrongOnServer = try await waitFor(serverErrors, count: 1).last ?? ""
            #expect(wrongOnServer.hasPrefix("TLSError(\(backend.name)) certificateVerificationFailed [selfSigned] [alert unknown_ca]: "),
                    "\(wrongOnServer)")
            // No certificate: certificate_required (TLS 1.3's alert for it).
            let none = try await run("curl", ["-sS", "--http1.1", "--cacert", ca] + url)
            #expect(none.status == 56, "\(none.error)")
            #expect(none.error == "curl: (56) OpenSSL SSL_read: \(ssl): error:0A00045C:SSL routines::tlsv13 alert certificate required, errno 0\n")
            #expect(none.output == "")
            let noneOnServer = try await waitFor(serverErrors, count: 2).last ?? ""
            #expect(noneOnServer.hasPrefix("TLSError(\(backend.name)) certificateVerificationFailed [noCertificate] [alert certificate_required]: "),
                    "\(noneOnServer)")
            #expect(serverErrors.withLockedValue { $0.count } == 2, "\(serverErrors.withLockedValue { $0 })")
        }
    }

    @Test("the HTTP/2 server refuses a context without h2 in ALPN")
    func http2NeedsALPN() throws {
        let backend = allBackends[0]
        let ids = try Identities(backend)
        let context = try backend.type.makeContext(.makeServerConfiguration(identity: ids.server))
        let error = #expect(throws: TLSError.self) { try HTTPServerBuilder.http2UpgradeTLSKit(context: context) }
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))")
        #expect(error?.backend == backend.type.id, "\(String(describing: error))")
        #expect(error?.message == "the server context offers ALPN [] without \"h2\": HTTP/2 cannot be negotiated",
                "\(String(describing: error))")
    }
}
