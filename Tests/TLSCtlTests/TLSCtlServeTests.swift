import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// `tlsctl serve` reached by curl, `openssl s_client`, `gnutls-cli`, `tlsctl connect`
/// and many TLSKit clients at once, on every compiled backend.
@Suite("tlsctl serve", .serialized, .timeLimit(.minutes(10)), .sharesProcess)
struct TLSCtlServeTests {
    @Test("serve --http answers curl --cacert, two requests on one connection", arguments: allBackends)
    func curl(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--http",
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        let (status, page, errors) = try run(try tool("curl"), [
            "--silent", "--show-error", "--include", "--cacert", files.cert,
            "--resolve", "localhost:\(server.port):127.0.0.1",
            "https://localhost:\(server.port)/first", "https://localhost:\(server.port)/second?x=1",
        ])
        #expect(status == 0, "\(errors)")
        #expect(page.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3, "\(page)")
        #expect(page.contains("backend:       \(backend.name) (\(backend.type.libraryVersion))"), "\(page)")
        #expect(page.contains("ALPN:          http/1.1"), "\(page)")
        #expect(page.contains("SNI:           localhost"), "\(page)")
        #expect(page.contains("client cert:   none"), "\(page)")
        #expect(page.contains("request:       GET /first HTTP/1.1"), "\(page)")
        #expect(page.contains("request:       GET /second?x=1 HTTP/1.1"), "\(page)")
        #expect(page.contains("protocol:      TLSv1.3"), "\(page)")
        // One connection served both requests, so --max-connections 1 lets the server exit.
        #expect(server.child.wait(timeout: 30) == 0)
    }

    @Test("openssl s_client verifies serve --http and reads the page", arguments: allBackends, [TLSVersion.tls13, .tls12])
    func openSSLClient(backend: Backend, version: TLSVersion) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--http",
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        let (status, output, errors) = try run(try tool("openssl"), [
            "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost", "-CAfile", files.cert,
            "-verify_return_error", "-verify_hostname", "localhost", "-alpn", "http/1.1", "-brief", "-ign_eof",
            version == .tls13 ? "-tls1_3" : "-tls1_2",
        ], input: "GET /from-s_client HTTP/1.0\r\n\r\n")
        #expect(status == 0, "\(errors)")
        #expect(errors.contains("Verification: OK"), "\(errors)")
        #expect(output.contains("ALPN:          http/1.1"), "\(output)")
        #expect(output.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(output)")
        #expect(output.contains("Connection: close\r\n"), "\(output)")
        #expect(output.contains("protocol:      \(version)"), "\(output)")
        #expect(output.contains("request:       GET /from-s_client HTTP/1.0"), "\(output)")
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(server.child.errorOutput.isEmpty, "\(server.child.errorOutput)")
    }

    @Test("gnutls-cli verifies serve --echo, negotiates ALPN h2 and gets its bytes back", arguments: allBackends)
    func gnuTLSClient(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--echo",
                                 "--alpn", "h2", "--max-connections", "1"])
        defer { server.child.stop() }
        let client = try Child(try tool("gnutls-cli"), [
            "127.0.0.1", "--port", "\(server.port)", "--x509cafile", files.cert,
            "--sni-hostname", "localhost", "--verify-hostname", "localhost", "--alpn", "h2",
        ])
        client.send("ping from gnutls-cli\n")
        try client.waitForOutput("ping from gnutls-cli\n", timeout: 30)
        client.closeInput()
        let status = client.wait(timeout: 30)
        #expect(status == 0, "\(client.errorOutput)")
        #expect(client.output.contains("The certificate is trusted."), "\(client.output)")
        #expect(client.output.contains("- Application protocol: h2"), "\(client.output)")
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(server.child.errorOutput.isEmpty, "\(server.child.errorOutput)")
    }

    @Test("without --cert serve presents a generated certificate; its printed fingerprint is the one clients see",
          arguments: allBackends)
    func generatedIdentity(backend: Backend) throws {
        let server = try Server(["--backend", backend.name, "--max-connections", "1"])
        defer { server.child.stop() }
        #expect(server.child.output.contains("certificate: self-signed for localhost, 127.0.0.1, ::1"))
        #expect(server.fingerprint.count == 32 * 3 - 1, "\(server.child.output)")
        let (status, _, errors) = try runTLSCtl(
            ["connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--insecure"], input: "")
        #expect(status == 0, "\(errors)")
        #expect(lines(errors).contains("peer SHA-256:  \(server.fingerprint)"), "\(errors)")
        #expect(lines(errors).contains("peer SANs:     DNS:localhost, IP:127.0.0.1, IP:::1"), "\(errors)")
        #expect(server.child.wait(timeout: 30) == 0)
    }

    @Test("mTLS: serve --verify-client required accepts connect --cert/--key and names the client",
          arguments: backendPairs)
    func mutualTLS(client: Backend, server serverBackend: Backend) throws {
        let serverFiles = try CertificateFiles(serverBackend)
        defer { serverFiles.remove() }
        let clientFiles = try CertificateFiles(client, name: "client", names: ["client.example"])
        defer { clientFiles.remove() }
        let server = try Server(["--backend", serverBackend.name, "--cert", serverFiles.cert, "--key", serverFiles.key,
                                 "--ca-file", clientFiles.cert, "--verify-client", "required", "--http",
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        let (status, page, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", client.name, "--ca-file", serverFiles.cert,
            "--server-name", "localhost", "--cert", clientFiles.cert, "--key", clientFiles.key, "--quiet",
        ], input: "GET /mtls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        #expect(status == 0, "\(errors)")
        #expect(page.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(page)")
        #expect(page.contains("client cert:   CN=client.example (verified (chain only, host name not checked))\n"), "\(page)")
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(server.child.errorOutput.isEmpty, "\(server.child.errorOutput)")
    }

    @Test("mTLS: a client without a certificate is refused by serve --verify-client required",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func mutualTLSMissingCertificate(backend: Backend, version: TLSVersion) throws {
        let serverFiles = try CertificateFiles(backend)
        defer { serverFiles.remove() }
        let clientFiles = try CertificateFiles(backend, name: "client", names: ["client.example"])
        defer { clientFiles.remove() }
        let server = try Server(["--backend", backend.name, "--cert", serverFiles.cert, "--key", serverFiles.key,
                                 "--ca-file", clientFiles.cert, "--verify-client", "required", "--echo",
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        let (status, output, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--ca-file", serverFiles.cert,
            "--quiet", "--max-version", version == .tls13 ? "1.3" : "1.2",
        ], input: "let me in\n")
        #expect(status == 1)
        #expect(output.isEmpty)
        #expect(lines(errors).count == 1, "\(errors)")
        let alert = version == .tls13 ? "certificate_required" : "handshake_failure"
        #expect(errors.hasPrefix("tlsctl: alertReceived: \(alert) (\(backend.name): "), "\(errors)")
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(lines(server.child.errorOutput).count == 1, "\(server.child.errorOutput)")
        #expect(server.child.errorOutput.contains(": certificate verification failed: noCertificate (\(backend.name): "),
                "\(server.child.errorOutput)")
    }

    @Test("200 concurrent clients on one server thread all complete", arguments: allBackends)
    func twoHundredClients(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let count = 200
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--echo",
                                 "--max-connections", "\(count)"])
        defer { server.child.stop() }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(files.identity.certificateChainPEM)])
        configuration.serverName = "localhost"
        let context = try backend.type.makeContext(configuration)
        let port = server.port

        // Every client completes its handshake, then waits until all 200 are connected at
        // once before it exchanges data: the server holds 200 live connections together.
        let connected = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let results = Locked<[Int: String]>([:])
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                var outcome = "ok"
                do {
                    let socket = try TLSSocket.connect(host: "127.0.0.1", port: port, context: context,
                                                       timeout: .seconds(60))
                    connected.signal()
                    _ = release.wait(timeout: .now() + 120)
                    let message = Array("client \(index)\n".utf8)
                    try socket.write(message)
                    var echoed: [UInt8] = []
                    for _ in 0..<1000 where echoed.count < message.count {
                        let chunk = try socket.read()
                        if chunk.isEmpty { break }
                        echoed += chunk
                    }
                    try socket.shutdown(waitForPeer: true)
                    if echoed != message { outcome = "echo mismatch: \(echoed)" }
                } catch {
                    connected.signal()
                    outcome = "\(error)"
                }
                results.withLock { $0[index] = outcome }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        var allConnected = true
        for _ in 0..<count where connected.wait(timeout: .now() + 120) != .success { allConnected = false }
        for _ in 0..<count { release.signal() }
        #expect(group.wait(timeout: .now() + 180) == .success)
        #expect(allConnected)
        let failures = results.withLock { $0.filter { $0.value != "ok" } }
        #expect(results.withLock { $0.count } == count)
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(server.child.wait(timeout: 60) == 0)
        #expect(server.child.errorOutput.isEmpty, "\(server.child.errorOutput.prefix(2000))")
    }

    @Test("garbage, a stalled handshake and a disconnect mid-handshake do not disturb a good client",
          arguments: allBackends)
    func misbehavingClients(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--echo",
                                 "--handshake-timeout", "3"])
        defer { server.child.stop() }

        let staller = try rawConnect(port: server.port)  // connects, never speaks
        defer { close(staller) }
        let garbage = try rawConnect(port: server.port)
        try rawSend(garbage, Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
        let quitter = try rawConnect(port: server.port)
        // The first bytes of a ClientHello record (handshake, TLS 1.0 record version, length 512), then gone.
        try rawSend(quitter, [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
        close(quitter)

        let (status, output, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--ca-file", files.cert,
            "--server-name", "localhost", "--quiet",
        ], input: "still served\n")
        #expect(status == 0, "\(errors)")
        #expect(output == "still served\n")

        #expect(server.child.stderrEventually(contains: ": protocolFailure (\(backend.name): ", timeout: 10),
                "\(server.child.errorOutput)")
        #expect(server.child.stderrEventually(contains: ": unexpectedEOF (\(backend.name): ", timeout: 10),
                "\(server.child.errorOutput)")
        #expect(server.child.stderrEventually(contains: ": handshake not completed within 3 s; dropped", timeout: 15),
                "\(server.child.errorOutput)")
        // The garbage client got an alert back rather than silence: one plaintext alert
        // record (type 21, version 0x0303, length 2), fatal, unexpected_message (an
        // unknown content type, 'G'), and nothing after it (8 asked, the end seen).
        #expect(rawReceive(garbage, count: 8) == [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0A])
        close(garbage)
        #expect(lines(server.child.errorOutput).count == 3, "\(server.child.errorOutput)")
        server.child.signal(SIGTERM)
        #expect(server.child.wait(timeout: 10) == 0)
    }

    @Test("--max-connections 1: once the one connection is accepted the listener is closed, while the connection goes on",
          arguments: allBackends)
    func maxConnectionsClosesTheListener(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--echo",
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        let served = try socketInodes(of: server.child.process.processIdentifier)
        let listeners = try tcpSockets().filter { $0.port == server.port && $0.state == "0A" && served.contains($0.inode) }
        try #require(listeners.count == 1, "\(listeners)")
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: server.port, context: try files.clientContext(backend),
                                           timeout: .seconds(30))
        try socket.write(Array("one\n".utf8))
        #expect(try socket.read() == Array("one\n".utf8))
        // No second connection can queue behind the first: the listening socket is gone.
        #expect(try !tcpSockets().contains { $0.inode == listeners[0].inode }, "the listener outlived --max-connections")
        try socket.write(Array("two\n".utf8))
        #expect(try socket.read() == Array("two\n".utf8))
        try socket.shutdown(waitForPeer: true)
        #expect(server.child.wait(timeout: 30) == 0)
    }

    @Test("SIGINT and SIGTERM stop serve cleanly: close_notify to connected clients, exit 0",
          arguments: allBackends, [SIGINT, SIGTERM])
    func stopsOnSignal(backend: Backend, signal: Int32) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--echo"])
        defer { server.child.stop() }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.pem(files.identity.certificateChainPEM)])
        let context = try backend.type.makeContext(configuration)
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: server.port, context: context,
                                           serverName: "localhost", timeout: .seconds(30))
        try socket.write(Array("before the signal\n".utf8))
        #expect(try socket.read() == Array("before the signal\n".utf8))
        // serve's listening socket, named by its inode: the one socket listening on the
        // port that is among serve's own descriptors.
        let served = try socketInodes(of: server.child.process.processIdentifier)
        let listeners = try tcpSockets().filter { $0.port == server.port && $0.state == "0A" && served.contains($0.inode) }
        try #require(listeners.count == 1, "\(listeners)")
        let listener = listeners[0].inode
        server.child.signal(signal)
        #expect(try socket.read() == [], "close_notify reads as the end of the stream")
        // The listener closed first, then the clients were told (stop()'s order).
        #expect(try !tcpSockets().contains { $0.inode == listener }, "the listener was still open at close_notify")
        #expect(server.child.wait(timeout: 10) == 0)
        let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
        #expect(server.child.errorOutput == "tlsctl: stopped by \(name): 1 connection(s) closed, 1 with close_notify\n")
        // Its listening socket no longer exists in the kernel, shared with no other
        // process. (A connection to the port could be taken by whoever bound it since.)
        #expect(try !tcpSockets().contains { $0.inode == listener }, "the listening socket outlived serve")
    }
}

/// A plain TCP connection to 127.0.0.1:port (for clients that misbehave).
func rawConnect(port: UInt16) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard fd >= 0, result == 0 else {
        throw TLSError(.transportFailure, "connect to 127.0.0.1:\(port) failed", backend: "tests", errno: errno)
    }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

/// Receives until `count` bytes arrived or the stream ended (end of file, reset, or
/// rawConnect's 10 s receive time-out on a silent peer): the bytes that arrived.
func rawReceive(_ fd: Int32, count: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: count)
    while bytes.count < count {
        let n = recv(fd, &buffer, count - bytes.count, 0)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return bytes
}

/// Sends all of `bytes` on a blocking socket.
func rawSend(_ fd: Int32, _ bytes: [UInt8]) throws {
    guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
        throw TLSError(.transportFailure, "send failed", backend: "tests", errno: errno)
    }
}
