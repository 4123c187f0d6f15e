import Foundation
import Testing
import TLSKit

/// Protocol features against peers nobody here wrote.
@Suite("Protocol features with real peers", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct FeaturePeerTests {
    private func files(_ fixture: Fixture) throws -> (URL, String, String) {
        let directory = try temporaryDirectory()
        return (directory, try write(fixture.identity.certificateChainPEM, to: "cert.pem", in: directory),
                try write(fixture.identity.privateKeyPEM, to: "key.pem", in: directory))
    }

    @Test("our client resumes against openssl s_server and gnutls-serv", arguments: allBackends, [TLSVersion.tls13, .tls12])
    func resumptionWithPeers(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, key) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let context = try fixture.clientContext { $0.maximumTLSVersion = version }
        for peer in ["openssl", "gnutls"] {
            let (server, port) = peer == "openssl"
                ? try startOpenSSLServer(["-cert", cert, "-key", key, "-rev"])
                : try startGnuTLSServer(["--x509certfile", cert, "--x509keyfile", key, "--echo"])
            defer { server.stop() }
            var session: TLSSession?
            for attempt in 0..<2 {
                let socket = try connectToPeer(port: port, context: context, serverName: "localhost") { connection in
                    if let session { try connection.setSession(session) }
                }
                #expect(socket.connection.isSessionReused == (attempt == 1), "\(peer) attempt \(attempt)")
                try socket.write(Array("ping\n".utf8))
                _ = try socket.read()  // the echo; TLS 1.3 tickets are processed on the way
                session = socket.connection.session
                #expect(session != nil, "\(peer): no session after the first exchange")
                try socket.shutdown()
            }
        }
    }

    @Test("our server's key log matches openssl s_client -keylogfile", arguments: allBackends)
    func keyLogMatchesOpenSSL(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, _) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let lines = Locked<[String]>([])
        let context = try fixture.serverContext { $0.keyLogger = TLSKeyLogger { line in lines.withLock { $0.append(line) } } }
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let server = Background { () -> Bool in
            let socket = try listener.accept(context: context, timeout: .seconds(20))
            try socket.write(Array("hello\n".utf8))
            try socket.shutdown()
            return true
        }
        let logFile = directory.appendingPathComponent("keys.log").path
        let client = try Peer(try tool("openssl"), ["s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost",
                                                   "-CAfile", cert, "-keylogfile", logFile, "-quiet"])
        client.closeInput()
        #expect(client.wait(timeout: 20) == 0, "\(client.errorOutput)")
        #expect(try server.join())
        let theirs = Set(try String(contentsOfFile: logFile, encoding: .utf8).split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("#") && !$0.isEmpty })
        let ours = Set(lines.withLock { $0 })
        #expect(!theirs.isEmpty)
        #expect(theirs.isSubset(of: ours), "missing: \(theirs.subtracting(ours))")
    }

    @Test("our client's exporter matches gnutls-serv --keymatexport", arguments: allBackends, [TLSVersion.tls13, .tls12])
    func exporterMatchesGnuTLS(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let (directory, cert, key) = try files(fixture)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try startGnuTLSServer([
            "--x509certfile", cert, "--x509keyfile", key, "--echo",
            "--keymatexport", "EXPERIMENTAL-tlskit", "--keymatexportsize", "20",
            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS\(version == .tls13 ? "1.3" : "1.2")",
        ])
        defer { server.stop() }
        let socket = try connectToPeer(port: port, context: try fixture.clientContext())
        let ours = try socket.connection.exportKeyingMaterial(label: "EXPERIMENTAL-tlskit", length: 20)
        try socket.write(Array("x\n".utf8))
        _ = try socket.read()
        try socket.shutdown()
        server.stop()
        let hex = ours.map { String(format: "%02X", $0) }.joined()
        #expect(server.output.uppercased().contains(hex), "gnutls-serv printed: \(server.output.suffix(600))")
    }
}
