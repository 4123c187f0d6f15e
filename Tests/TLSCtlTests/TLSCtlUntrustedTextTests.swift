import Foundation
import Testing
import TLSKit

/// tlsctl never writes a control byte that came from a peer's certificate: hostile
/// subjects and SANs (ESC sequences, BEL, backspace) reach stdout and stderr escaped.
@Suite("tlsctl: hostile certificate text is escaped", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct TLSCtlUntrustedTextTests {
    /// ESC [2J clears the screen, ESC ]0;… sets the window title, BEL ends it, BS erases.
    static let hostileName = "\u{1B}[2J\u{1B}]0;pwned\u{07}\u{08}evil.example"
    static let escapedName = "\\x1b[2J\\x1b]0;pwned\\x07\\x08evil.example"

    /// A self-signed certificate whose CN and DNS SAN are `hostileName`, made by `openssl`.
    struct HostileCertificate {
        let directory: URL
        let cert: String
        let key: String

        init(name: String) throws {
            directory = try temporaryDirectory()
            cert = directory.appendingPathComponent("\(name).pem").path
            key = directory.appendingPathComponent("\(name).key").path
            let (status, _, errors) = try run(try tool("openssl"), [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-utf8",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=\(TLSCtlUntrustedTextTests.hostileName)",
                "-addext", "subjectAltName=DNS:\(TLSCtlUntrustedTextTests.hostileName)",
                "-addext", "extendedKeyUsage=serverAuth,clientAuth",
            ])
            guard status == 0 else { throw TLSError(.internalError, "openssl req failed: \(errors)", backend: "tests") }
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    /// Bytes below 0x20 other than the newline, DEL, and bytes that are not UTF-8.
    static func unsafeBytes(_ bytes: [UInt8]) -> [UInt8] {
        let controls = bytes.filter { ($0 < 0x20 && $0 != 0x0A) || $0 == 0x7F }
        return String(validating: bytes, as: UTF8.self) == nil ? controls + [0xFF] : controls
    }

    @Test("connect: the failure line and the summary escape the server's names", arguments: allBackends)
    func connect(backend: Backend) throws {
        let hostile = try HostileCertificate(name: "server")
        defer { hostile.remove() }
        let server = try Server(["--backend", backend.name, "--cert", hostile.cert, "--key", hostile.key,
                                 "--echo", "--max-connections", "2"])
        defer { server.child.stop() }

        // Trusted (the certificate is its own root) but issued for another name.
        let refused = try Child.tlsctl(["connect", "127.0.0.1:\(server.port)", "--backend", backend.name,
                                        "--ca-file", hostile.cert, "--server-name", "localhost"])
        refused.closeInput()
        #expect(refused.wait() == 1)
        #expect(Self.unsafeBytes(refused.errorBytes).isEmpty, "\(refused.errorOutput.debugDescription)")
        #expect(Self.unsafeBytes(refused.outputBytes).isEmpty)
        #expect(refused.errorOutput.hasPrefix("tlsctl: certificate verification failed: hostnameMismatch (\(backend.name): "),
                "\(refused.errorOutput.debugDescription)")
        #expect(refused.errorOutput.contains(Self.escapedName), "\(refused.errorOutput.debugDescription)")

        // Without verification: the summary names the certificate, escaped.
        let accepted = try Child.tlsctl(["connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--insecure",
                                         "--server-name", "localhost"])
        accepted.closeInput()
        #expect(accepted.wait() == 0, "\(accepted.errorOutput.debugDescription)")
        #expect(Self.unsafeBytes(accepted.errorBytes).isEmpty, "\(accepted.errorOutput.debugDescription)")
        #expect(Self.unsafeBytes(accepted.outputBytes).isEmpty)
        #expect(lines(accepted.errorOutput).contains("peer SANs:     DNS:\(Self.escapedName)"),
                "\(accepted.errorOutput.debugDescription)")
        #expect(lines(accepted.errorOutput).contains { $0.hasPrefix("peer subject:  ") && $0.contains("pwned") },
                "\(accepted.errorOutput.debugDescription)")
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(Self.unsafeBytes(server.child.outputBytes).isEmpty)
        #expect(Self.unsafeBytes(server.child.errorBytes).isEmpty, "\(server.child.errorOutput.debugDescription)")
    }

    @Test("serve: a hostile client certificate is escaped in the page and in the log", arguments: allBackends)
    func serve(backend: Backend) throws {
        let serverFiles = try CertificateFiles(backend)
        defer { serverFiles.remove() }
        let hostile = try HostileCertificate(name: "client")
        defer { hostile.remove() }
        let stranger = try HostileCertificate(name: "stranger")
        defer { stranger.remove() }
        let server = try Server(["--backend", backend.name, "--cert", serverFiles.cert, "--key", serverFiles.key,
                                 "--ca-file", hostile.cert, "--verify-client", "required", "--http",
                                 "--max-connections", "2"])
        defer { server.child.stop() }

        // Trusted client: the HTTP page names it, escaped.
        let (status, page, errors) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--ca-file", serverFiles.cert,
            "--server-name", "localhost", "--cert", hostile.cert, "--key", hostile.key, "--quiet",
        ], input: "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        #expect(status == 0, "\(errors)")
        #expect(page.contains("client cert:   ") && page.contains("pwned"), "\(page.debugDescription)")
        #expect(Self.unsafeBytes(Array(page.utf8)).filter { $0 != 0x0D }.isEmpty, "\(page.debugDescription)")

        // Untrusted client (same names, another key): refused, and the log line is safe.
        let (refusedStatus, _, _) = try runTLSCtl([
            "connect", "127.0.0.1:\(server.port)", "--backend", backend.name, "--ca-file", serverFiles.cert,
            "--server-name", "localhost", "--cert", stranger.cert, "--key", stranger.key, "--quiet",
        ], input: "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        #expect(refusedStatus == 1)
        #expect(server.child.wait(timeout: 30) == 0)
        #expect(Self.unsafeBytes(server.child.errorBytes).isEmpty, "\(server.child.errorOutput.debugDescription)")
        #expect(server.child.errorOutput.contains(": certificate verification failed: "), "\(server.child.errorOutput)")
        #expect(Self.unsafeBytes(server.child.outputBytes).isEmpty)
    }
}
