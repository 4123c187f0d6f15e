import Foundation
import Testing
import TLSKit

/// Interoperability with TLS implementations nobody here wrote: `openssl s_server` /
/// `s_client` and `gnutls-serv` / `gnutls-cli`; each server picks its own loopback port,
/// read back once it says it listens. A missing
/// tool is a failure, never a skip (`.ci/run` installs them).
@Suite("Real peers", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct RealPeerTests {
    static let versions: [TLSVersion] = [.tls13, .tls12]

    /// OpenSSL's names for the TLS 1.2 suites an ECDSA server can negotiate by default.
    static let openSSLNames = [
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    ]

    /// Writes the fixture's identity where the tools can read it.
    private func files(_ fixture: Fixture) throws -> (directory: URL, cert: String, key: String) {
        let directory = try temporaryDirectory()
        let cert = try write(fixture.identity.certificateChainPEM, to: "cert.pem", in: directory)
        let key = try write(fixture.identity.privateKeyPEM, to: "key.pem", in: directory)
        return (directory, cert, key)
    }

    /// Our client: GET / over TLS; the server answers with an HTTP page.
    private func fetch(port: UInt16, context: TLSContext) throws -> (TLSSocket, String) {
        let socket = try connectToPeer(port: port, context: context)
        try socket.write(Array("GET / HTTP/1.0\r\n\r\n".utf8))
        var reply: [UInt8] = []
        for _ in 0..<10_000 where reply.count < 1_000_000 {
            do {
                let chunk = try socket.read()
                if chunk.isEmpty { break }
                reply += chunk
            } catch let error as TLSError where error.code == .unexpectedEOF {
                break  // HTTP/1.0 servers may close the socket without close_notify
            }
        }
        return (socket, String(decoding: reply, as: UTF8.self))
    }

    @Test("our client against openssl s_server", arguments: allBackends, versions)
    func clientAgainstOpenSSLServer(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, key) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try startOpenSSLServer([
            "-cert", cert, "-key", key, "-www", "-naccept", "1",
            version == .tls13 ? "-tls1_3" : "-tls1_2", "-alpn", "http/1.1",
        ])
        defer { server.stop() }
        let context = try fixture.clientContext { $0.applicationProtocols = ["h2", "http/1.1"] }
        let (socket, page) = try fetch(port: port, context: context)
        #expect(socket.connection.negotiatedVersion == version)
        #expect(socket.connection.negotiatedApplicationProtocol == "http/1.1")
        #expect(socket.connection.peerVerification == .verified)
        #expect(page.hasPrefix("HTTP/1.0 200 ok"), "\(page.prefix(200))")
        // The -www page names the suite s_server negotiated, in OpenSSL's spelling of the
        // IANA name we report: TLS 1.3 names are the same; TLS 1.2 ones are mapped.
        let suite = try #require(socket.connection.cipherSuite)
        let openSSLName = version == .tls13 ? suite : try #require(Self.openSSLNames[suite], "\(suite)")
        #expect(page.contains("New, \(version), Cipher is \(openSSLName)\n"), "\(openSSLName) not in \(page.suffix(800))")
    }

    @Test("our client against gnutls-serv", arguments: allBackends, versions)
    func clientAgainstGnuTLSServer(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, key) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try startGnuTLSServer([
            "--x509certfile", cert, "--x509keyfile", key, "--http",
            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS\(version == .tls13 ? "1.3" : "1.2")",
        ])
        defer { server.stop() }
        let context = try fixture.clientContext()
        let (socket, page) = try fetch(port: port, context: context)
        #expect(socket.connection.negotiatedVersion == version)
        #expect(socket.connection.peerVerification == .verified)
        #expect(page.contains("HTTP/1.0 200 OK"), "\(page.prefix(200))")
    }

    @Test("our client refuses openssl s_server presenting a certificate for another host", arguments: allBackends)
    func clientRejectsWrongHost(backend: Backend) throws {
        let fixture = try Fixture(backend, names: ["other.example"])
        let (directory, cert, key) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try startOpenSSLServer(["-cert", cert, "-key", key, "-www", "-naccept", "1"])
        defer { server.stop() }
        let error = try #require(throws: TLSError.self) { try connectToPeer(port: port, context: fixture.clientContext()) }
        #expect(error.code == .certificateVerificationFailed)
        #expect(error.verificationFailure == .hostnameMismatch)
        // -naccept 1: s_server exits 0 once its one connection ended (here, with our alert).
        #expect(server.wait(timeout: 10) == 0, "\(server.errorOutput)")
        // s_server reports the alert it read on stderr, by number.
        #expect(server.errorOutput.contains("alert bad certificate") && server.errorOutput.contains("SSL alert number 42"),
                "s_server should report our bad_certificate alert: \(server.errorOutput)")
    }

    /// Runs our server for one connection: reads a line, answers "pong: <line>", closes.
    private func serveOnce(context: TLSContext) throws -> (TLSListener, Background<String?>) {
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let server = Background { () -> String? in
            let socket = try listener.accept(context: context, timeout: .seconds(30))
            var line: [UInt8] = []
            for _ in 0..<1000 where !line.contains(UInt8(ascii: "\n")) {
                let chunk = try socket.read()
                if chunk.isEmpty { break }
                line += chunk
            }
            try socket.write(Array("pong: ".utf8) + line)
            try socket.shutdown()
            return "\(socket.connection.negotiatedVersion.map { "\($0)" } ?? "?") \(socket.connection.negotiatedApplicationProtocol ?? "-")"
        }
        return (listener, server)
    }

    @Test("openssl s_client against our server", arguments: allBackends, versions)
    func openSSLClientAgainstServer(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, _) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let context = try fixture.serverContext { $0.applicationProtocols = ["h2"] }
        let (listener, server) = try serveOnce(context: context)
        let client = try Peer(try tool("openssl"), [
            "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost",
            "-CAfile", cert, "-verify_return_error", "-verify_hostname", "localhost",
            version == .tls13 ? "-tls1_3" : "-tls1_2", "-alpn", "h2", "-brief",
        ])
        client.send("ping\n")
        let status = client.wait(timeout: 30)
        #expect(try server.join() == "\(version) h2")
        #expect(client.output.contains("pong: ping"), "stdout: \(client.output) stderr: \(client.errorOutput)")
        #expect(client.errorOutput.contains("Verification: OK"), "\(client.errorOutput)")
        #expect(client.errorOutput.contains("Protocol version: \(version)"), "\(client.errorOutput)")
        #expect(status == 0)
    }

    /// Each version, with and without RFC 5746's `renegotiation_info`
    /// (`%DISABLE_SAFE_RENEGOTIATION`: a TLS 1.3-only client has none to send).
    static let gnuTLSClientCases: [(version: TLSVersion, signalsRFC5746: Bool)] =
        versions.flatMap { version in [(version, true), (version, false)] }

    @Test("gnutls-cli against our server, with and without renegotiation_info: served, as gnutls-serv and s_server do",
          arguments: allBackends, gnuTLSClientCases)
    func gnuTLSClientAgainstServer(backend: Backend, c: (version: TLSVersion, signalsRFC5746: Bool)) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, _) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let context = try fixture.serverContext { $0.applicationProtocols = ["h2"] }
        let (listener, server) = try serveOnce(context: context)
        let client = try Peer(try tool("gnutls-cli"), [
            "127.0.0.1", "--port", "\(listener.port)", "--sni-hostname", "localhost",
            "--verify-hostname", "localhost", "--x509cafile", cert, "--alpn", "h2",
            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS\(c.version == .tls13 ? "1.3" : "1.2")"
                + (c.signalsRFC5746 ? "" : ":%DISABLE_SAFE_RENEGOTIATION"),
        ])
        client.send("ping\n")
        let status = client.wait(timeout: 30)
        #expect(try server.join() == "\(c.version) h2")
        #expect(client.output.contains("pong: ping"), "stdout: \(client.output) stderr: \(client.errorOutput)")
        #expect(client.output.contains("- Status: The certificate is trusted."), "\(client.output)")
        // Its Options line names "safe renegotiation" when RFC 5746 was negotiated (TLS 1.2).
        #expect(client.output.contains("- Options:"), "\(client.output)")
        #expect(client.output.contains("safe renegotiation") == (c.signalsRFC5746 && c.version == .tls12), "\(client.output)")
        // Our server ends with close_notify: gnutls-cli says "Peer has closed the GnuTLS
        // connection" and exits 0; a TCP close without it ("non-properly terminated") is 1.
        #expect(client.output.contains("- Peer has closed the GnuTLS connection"), "\(client.output)")
        #expect(status == 0, "gnutls-cli exit \(status): \(client.errorOutput)")
    }

    // MARK: - RFC 5746: renegotiation_info

    @Test("our client against a TLS 1.2 gnutls-serv that does not signal RFC 5746: refused on every backend (an OpenSSL 3 client's default)",
          arguments: allBackends)
    func serverWithoutRenegotiationInfo(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, key) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try startGnuTLSServer([
            "--x509certfile", cert, "--x509keyfile", key, "--echo",
            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2:%DISABLE_SAFE_RENEGOTIATION",
        ])
        defer { server.stop() }
        let context = try fixture.clientContext()
        #expect {
            _ = try connectToPeer(port: port, context: context)
        } throws: { error in
            let error = error as? TLSError
            return error?.code == .protocolFailure && error?.alert == .handshakeFailure && error?.backend == backend.id
        }
        // The same server with TLS 1.3 allowed: nothing to renegotiate, served.
        let (modern, modernPort) = try startGnuTLSServer([
            "--x509certfile", cert, "--x509keyfile", key, "--echo",
            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_SAFE_RENEGOTIATION",
        ])
        defer { modern.stop() }
        let socket = try connectToPeer(port: modernPort, context: context)
        #expect(socket.connection.negotiatedVersion == .tls13)
    }
}
