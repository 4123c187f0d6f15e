import Foundation
import Testing
import TLSKit

/// `tlsctl connect` against servers nobody here wrote (`openssl s_server`,
/// `gnutls-serv`) and against `tlsctl serve`, on every compiled backend.
@Suite("tlsctl connect", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct TLSCtlConnectTests {
    /// Starts `openssl s_server` on a port it picks itself, reversing each line it receives;
    /// returns once it printed `ACCEPT 127.0.0.1:<port>` (after it listens), with that port.
    private func openSSLServer(_ files: CertificateFiles, _ extra: [String] = []) throws -> (Child, UInt16) {
        let server = try Child(try tool("openssl"), [
            "s_server", "-accept", "127.0.0.1:0", "-cert", files.cert, "-key", files.key,
            "-rev", "-naccept", "1",
        ] + extra)
        try server.waitForOutput("ACCEPT 127.0.0.1:", timeout: 30)
        let line = server.output.split(separator: "\n").first { $0.hasPrefix("ACCEPT 127.0.0.1:") }
        guard let port = line.flatMap({ UInt16($0.dropFirst("ACCEPT 127.0.0.1:".count)) }) else {
            throw TLSError(.internalError, "no port in s_server's output: \(server.output)", backend: "tests")
        }
        return (server, port)
    }

    @Test("connect copies stdin to openssl s_server -rev and its replies to stdout; summary and ALPN",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func againstOpenSSLServer(backend: Backend, version: TLSVersion) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let (server, port) = try openSSLServer(files, ["-alpn", "http/1.1"])
        defer { server.stop() }
        let (status, output, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(port)", "--backend", backend.name, "--ca-file", files.cert,
            "--alpn", "h2,http/1.1", "--max-version", version == .tls13 ? "1.3" : "1.2",
        ], input: "hello\nworld\n")
        #expect(status == 0, "\(errors)")
        #expect(output == "olleh\ndlrow\n")
        let summary = lines(errors)
        #expect(summary.first == "connected to 127.0.0.1:\(port) with \(backend.name) (\(backend.type.libraryVersion))")
        #expect(summary.contains("protocol:      \(version)"), "\(errors)")
        #expect(summary.contains("ALPN:          http/1.1"), "\(errors)")
        #expect(summary.contains("peer subject:  CN=localhost"), "\(errors)")
        #expect(summary.contains("peer SANs:     DNS:localhost, IP:127.0.0.1, IP:::1"), "\(errors)")
        #expect(summary.contains("verification:  verified (chain and host name)"), "\(errors)")
        #expect(summary.contains { $0.hasPrefix("cipher suite:  TLS_") }, "\(errors)")
        #expect(server.wait(timeout: 10) == 0)
        #expect(server.output.contains("ALPN protocols selected: http/1.1"), "\(server.output)")
    }

    @Test("connect to gnutls-serv --echo, --quiet prints only the echoed bytes", arguments: allBackends)
    func againstGnuTLSServer(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Child(try tool("gnutls-serv"), [
            "--port", "0", "--x509certfile", files.cert, "--x509keyfile", files.key, "--echo",
        ])
        defer { server.stop() }
        // gnutls-serv picks its own port (printed as "port 0": read back from the kernel)
        // and says "...done" once it listens (on IPv4 and, on another port, IPv6): the
        // address, not the name, whose resolution is the machine's /etc/hosts.
        try #require(server.stderrEventually(contains: "Echo Server listening on IPv4 0.0.0.0 port 0...done", timeout: 30),
                     "\(server.errorOutput)")
        let port = try listeningPort(of: server.process.processIdentifier)
        let (status, output, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(port)", "--backend", backend.name, "--ca-file", files.cert,
            "--server-name", "localhost", "--quiet",
        ], input: "ping\npong\n")
        #expect(status == 0, "\(errors)")
        #expect(output == "ping\npong\n")
        #expect(errors.isEmpty, "\(errors)")
    }

    @Test("a certificate for another host: exit 1, hostnameMismatch", arguments: allBackends)
    func wrongHost(backend: Backend) throws {
        let files = try CertificateFiles(backend, names: ["other.example"])
        defer { files.remove() }
        let (server, port) = try openSSLServer(files)
        defer { server.stop() }
        let (status, output, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(port)", "--backend", backend.name, "--ca-file", files.cert,
            "--server-name", "localhost",
        ], input: "never sent\n")
        #expect(status == 1)
        #expect(output.isEmpty)
        #expect(lines(errors).count == 1, "\(errors)")
        #expect(errors.hasPrefix("tlsctl: certificate verification failed: hostnameMismatch (\(backend.name): "), "\(errors)")
    }

    @Test("an untrusted self-signed certificate: exit 1, selfSigned; --insecure connects and says so",
          arguments: allBackends)
    func untrusted(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key])
        defer { server.child.stop() }
        let (status, output, errors) = try runTLSCtl(
            ["connect", "127.0.0.1:\(server.port)", "--backend", backend.name], input: "x")
        #expect(status == 1)
        #expect(output.isEmpty)
        #expect(lines(errors).count == 1, "\(errors)")
        #expect(errors.hasPrefix("tlsctl: certificate verification failed: selfSigned (\(backend.name): "), "\(errors)")

        let (insecureStatus, echoed, summary) = try runTLSCtl(
            ["connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--insecure"], input: "insecure\n")
        #expect(insecureStatus == 0, "\(summary)")
        #expect(echoed == "insecure\n")
        #expect(lines(summary).contains("verification:  NOT verified (insecureNoVerification)"), "\(summary)")
        #expect(lines(summary).contains("peer SHA-256:  \(server.fingerprint)"), "\(summary) vs \(server.fingerprint)")
    }

    @Test("connect to tlsctl serve --echo, every client backend against every server backend, large input",
          arguments: backendPairs)
    func echoAcrossBackends(client: Backend, server serverBackend: Backend) throws {
        let files = try CertificateFiles(serverBackend)
        defer { files.remove() }
        let server = try Server(["--backend", serverBackend.name, "--cert", files.cert, "--key", files.key,
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        // 720 KB of lines: more than the socket buffers hold, so both directions must flow at once.
        let input = (0..<20_000).map { "line \($0) of the tlsctl relay test\n" }.joined()
        let (status, output, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", client.name, "--ca-file", files.cert,
            "--server-name", "localhost", "--quiet",
        ], input: input, timeout: 60)
        #expect(status == 0, "\(errors)")
        #expect(output.count == input.count)
        #expect(output == input)
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(server.child.errorOutput.isEmpty, "\(server.child.errorOutput)")
    }

    @Test("the server closes first: connect prints the reply at once and exits 0 when stdin ends later",
          arguments: allBackends)
    func serverClosesFirst(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key, "--http",
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        let client = try Child.tlsctl([
            "connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--ca-file", files.cert,
            "--server-name", "localhost", "--quiet",
        ])
        client.send("GET /first HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        // The reply arrives while stdin is still open: connect does not block on stdin.
        try client.waitForOutput("request:       GET /first HTTP/1.1\n", timeout: 30)
        #expect(server.child.wait(timeout: 30) == 0, "the server closed its side and exited")
        #expect(client.process.isRunning, "connect waits for the end of stdin (half-close)")
        client.closeInput()
        #expect(client.wait(timeout: 30) == 0, "\(client.errorOutput)")
        #expect(client.errorOutput.isEmpty, "\(client.errorOutput)")
        #expect(client.output.hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    @Test("connect over IPv6: serve --host ::1 and connect [::1]:PORT", arguments: allBackends)
    func ipv6(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--host", "::1", "--cert", files.cert, "--key", files.key,
                                 "--max-connections", "1"])
        defer { server.child.stop() }
        #expect(server.child.output.contains("listening on [::1]:\(server.port)\n"))
        let (status, output, errors) = try runTLSCtl([
            "connect", "[::1]:\(server.port)", "--backend", backend.name, "--ca-file", files.cert,
        ], input: "six\n")
        #expect(status == 0, "\(errors)")
        #expect(output == "six\n")
        #expect(lines(errors).first == "connected to [::1]:\(server.port) with \(backend.name) (\(backend.type.libraryVersion))")
        #expect(lines(errors).contains("verification:  verified (chain and host name)"), "\(errors)")
        #expect(server.child.wait(timeout: 30) == 0)
    }

    @Test("a server that answers only TLS 1.2 refuses --min-version 1.3: exit 1 naming the alert", arguments: allBackends)
    func versionMismatch(backend: Backend) throws {
        let files = try CertificateFiles(backend)
        defer { files.remove() }
        let server = try Server(["--backend", backend.name, "--cert", files.cert, "--key", files.key,
                                 "--max-version", "1.2", "--max-connections", "1"])
        defer { server.child.stop() }
        let (status, _, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--ca-file", files.cert,
            "--min-version", "1.3",
        ], input: "")
        #expect(status == 1)
        #expect(lines(errors).count == 1, "\(errors)")
        #expect(errors.hasPrefix("tlsctl: alertReceived: protocol_version (\(backend.name): "), "\(errors)")
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(server.child.errorOutput.contains(": protocolFailure (\(backend.name): "), "\(server.child.errorOutput)")
    }
}
