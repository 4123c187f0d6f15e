import Foundation
import Testing
import TLSKit

/// The verdicts of issue 13, on every backend with the same code, category and alert:
/// tampered signatures, issuers not allowed to sign, name constraints, partial-chain
/// trust, and hostile certificate text (NUL, ESC, bytes that are not UTF-8), which must
/// reach the error message escaped.
@Suite("Verification verdicts", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct VerificationVerdictTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// Certificates the server sends, leaf first; the key is the first one's.
        let chain: [String]
        var key: String? = nil
        var host = "localhost"
        /// Trust roots file (without `.pem`).
        var trust = "root"
        var partialChains = false
        /// nil: the handshake succeeds.
        let failure: TLSError.VerificationFailure?
        /// The alert the server receives, by its registered name.
        var alert: String? = nil
        /// Text the client's error message must contain (escaped peer text).
        var message: String? = nil
        var testDescription: String { "\(name) → \(failure.map { "\($0)" } ?? "ok")" }
    }

    static let cases: [Case] = [
        Case(name: "bad leaf signature (RSA issuer)", chain: ["badrsaleaf", "rsainter"], key: "rsaleaf",
             failure: .badSignature, alert: "decrypt_error"),
        Case(name: "bad leaf signature (EC issuer)", chain: ["badleaf", "inter"], key: "good",
             failure: .badSignature, alert: "decrypt_error"),
        Case(name: "bad intermediate signature", chain: ["good", "badinter"],
             failure: .badSignature, alert: "decrypt_error"),
        Case(name: "issuer is CA:FALSE", chain: ["undernotca", "notca", "inter"],
             failure: .invalidCA, alert: "bad_certificate"),
        Case(name: "intermediate CA:TRUE without keyCertSign", chain: ["undernosign", "nosign"],
             failure: .invalidCA, alert: "bad_certificate"),
        Case(name: "path-length constraint exceeded", chain: ["underpath", "subca", "pathzero"],
             failure: .invalidCA, alert: "bad_certificate"),
        Case(name: "name constraints: DNS name outside the permitted subtree", chain: ["evildns", "constrained"],
             host: "evil.test", failure: .nameConstraintsViolation, alert: "bad_certificate"),
        Case(name: "name constraints: IP address outside the permitted subtree", chain: ["evilip", "constrained"],
             host: "127.0.0.1", failure: .nameConstraintsViolation, alert: "bad_certificate"),
        Case(name: "name constraints: name inside the permitted subtree", chain: ["okconstrained", "constrained"],
             host: "www.example.test", failure: nil),
        Case(name: "partial chain, default: an intermediate is not an anchor", chain: ["good", "inter"],
             trust: "inter", failure: .unknownIssuer, alert: "unknown_ca"),
        Case(name: "partial chain, default: leaf only, intermediate trusted", chain: ["good"],
             trust: "inter", failure: .unknownIssuer, alert: "unknown_ca"),
        Case(name: "partial chain allowed: the intermediate is the anchor", chain: ["good", "inter"],
             trust: "inter", partialChains: true, failure: nil),
        Case(name: "partial chain allowed: leaf only, intermediate trusted", chain: ["good"],
             trust: "inter", partialChains: true, failure: nil),
        Case(name: "partial chain allowed, full chain to the root still verifies", chain: ["good", "inter"],
             partialChains: true, failure: nil),
        Case(name: "DNS SAN with a NUL", chain: ["nulsan", "inter"], host: "good.example.test",
             failure: .hostnameMismatch, alert: "bad_certificate", message: "good.example.test\\x00.evil.test"),
        Case(name: "DNS SAN with ESC sequences", chain: ["escsan", "inter"],
             failure: .hostnameMismatch, alert: "bad_certificate", message: "\\x1b[2J\\x1b]0;pwned\\x07.example"),
        Case(name: "DNS SAN with bytes that are not UTF-8", chain: ["utf8san", "inter"],
             failure: .hostnameMismatch, alert: "bad_certificate", message: "bad\\xff\\xfe\\xc0.example"),
        // A UTF8String that is not UTF-8 cannot be in a CN: libcrypto refuses to parse
        // such a certificate at all (invalid utf8string), so the CN case has valid UTF-8.
        Case(name: "CN with NUL, ESC and DEL (no SANs)", chain: ["hostilecn", "inter"],
             failure: .hostnameMismatch, alert: "bad_certificate", message: "CN=local\\x00host\\x1b[1m\\x7f!"),
    ]

    static func makeFactory() throws -> CertificateFactory {
        let f = try CertificateFactory()
        let local = ["localhost", "127.0.0.1", "::1"]
        try f.issue("root", issuer: nil, commonName: "TLSKit verdict root", days: (-1, 3), isCA: true, extendedKeyUsage: nil)
        try f.issue("inter", issuer: "root", commonName: "TLSKit verdict intermediate", isCA: true, extendedKeyUsage: nil)
        try f.issue("good", issuer: "inter", names: local)
        try f.tamperSignature("good", as: "badleaf")
        // badinter gets inter's key and name, so it issued "good"; only its signature is broken.
        try f.openssl(["x509", "-in", f.path("inter.pem"), "-out", f.path("intercopy.pem")])
        try f.tamperSignature("intercopy", as: "badinter")
        try f.issue("rsainter", issuer: "root", commonName: "TLSKit verdict RSA intermediate", isCA: true,
                    extendedKeyUsage: nil, key: "rsa:2048")
        try f.issue("rsaleaf", issuer: "rsainter", names: local)
        try f.tamperSignature("rsaleaf", as: "badrsaleaf")
        try f.issue("notca", issuer: "inter", commonName: "not a CA", names: ["notca.example"])
        try f.issue("undernotca", issuer: "notca", names: local)
        try f.issue("nosign", issuer: "root", commonName: "CA without keyCertSign", isCA: true, extendedKeyUsage: nil,
                    keyUsage: "digitalSignature")
        try f.issue("undernosign", issuer: "nosign", names: local)
        try f.issue("pathzero", issuer: "root", commonName: "CA with pathlen 0", isCA: true, extendedKeyUsage: nil,
                    basicConstraints: "CA:TRUE,pathlen:0")
        try f.issue("subca", issuer: "pathzero", commonName: "CA below pathlen 0", isCA: true, extendedKeyUsage: nil)
        try f.issue("underpath", issuer: "subca", names: local)
        try f.issue("constrained", issuer: "root", commonName: "CA for example.test", isCA: true, extendedKeyUsage: nil,
                    extraExtensions: ["nameConstraints=critical,permitted;DNS:example.test,permitted;IP:10.0.0.0/255.0.0.0"])
        try f.issue("evildns", issuer: "constrained", commonName: "www.example.test", names: ["evil.test"])
        try f.issue("evilip", issuer: "constrained", commonName: "www.example.test", names: ["127.0.0.1"])
        try f.issue("okconstrained", issuer: "constrained", names: ["www.example.test"])
        // Hostile names: written with ASCII placeholders of the same length, then patched.
        try f.issue("nulsan", issuer: "inter", commonName: "nul", names: ["good.example.testX.evil.test"])
        try f.patch("nulsan", issuer: "inter", replacing: "good.example.testX.evil.test",
                    with: Array("good.example.test".utf8) + [0] + Array(".evil.test".utf8))
        let escape = [0x1B] + Array("[2J".utf8) + [0x1B] + Array("]0;pwned".utf8) + [0x07] + Array(".example".utf8)
        try f.issue("escsan", issuer: "inter", commonName: "esc", names: [String(repeating: "e", count: escape.count)])
        try f.patch("escsan", issuer: "inter", replacing: String(repeating: "e", count: escape.count), with: escape)
        try f.issue("utf8san", issuer: "inter", commonName: "utf8", names: ["badXYZ.example"])
        try f.patch("utf8san", issuer: "inter", replacing: "badXYZ.example", with: Array("bad".utf8) + [0xFF, 0xFE, 0xC0] + Array(".example".utf8))
        try f.issue("hostilecn", issuer: "inter", commonName: "localQhostQQQQQQ")
        try f.patch("hostilecn", issuer: "inter", replacing: "localQhostQQQQQQ",
                    with: Array("local".utf8) + [0] + Array("host".utf8) + [0x1B] + Array("[1m".utf8) + [0x7F] + Array("!".utf8))
        return f
    }

    static let factory = Result { try makeFactory() }

    @Test("every case in memory: exact code, category and alert, the same on every backend", arguments: allBackends)
    func verdicts(backend: Backend) throws {
        let f = try Self.factory.get()
        for row in Self.cases {
            let (link, clientSteps, serverSteps) = try f.memoryHandshake(
                backend: backend, chain: row.chain, key: row.key ?? row.chain[0]) { client in
                client.trustRoots = .caFile(f.path("\(row.trust).pem"))
                client.trustsPartialChains = row.partialChains
                client.serverName = row.host
            }
            if let failure = row.failure {
                let error = link.client.lastError
                #expect(clientSteps.last == Step(-1, .ssl), "\(row.name)")
                #expect(error?.code == .certificateVerificationFailed, "\(row.name): \(String(describing: error))")
                #expect(error?.verificationFailure == failure, "\(row.name): \(String(describing: error))")
                #expect(error?.alert?.name == row.alert, "\(row.name): \(String(describing: error))")
                if let message = row.message {
                    #expect(error?.message.contains(message) == true, "\(row.name): \(String(describing: error))")
                }
                let text = String(describing: error)
                #expect(!text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) },
                        "\(row.name): a control character in \(text.debugDescription)")
                #expect(serverSteps.last == Step(-1, .ssl), "\(row.name)")
                #expect(link.server.lastError?.code == .alertReceived, "\(row.name)")
                #expect(link.server.lastError?.alert?.name == row.alert, "\(row.name): \(String(describing: link.server.lastError))")
            } else {
                #expect(clientSteps.last == Step(1, .none), "\(row.name): \(String(describing: link.client.lastError))")
                #expect(serverSteps.last == Step(1, .none), "\(row.name)")
                #expect(link.client.peerVerification == .verified, "\(row.name)")
            }
        }
    }

    @Test("hostile certificate text: TLSCertificateInfo's description is escaped", arguments: allBackends)
    func certificateInfoDescription(backend: Backend) throws {
        let f = try Self.factory.get()
        for name in ["escsan", "hostilecn", "nulsan", "utf8san"] {
            let info = try backend.type.certificateInfo(der: firstDER(ofPEM: try f.read("\(name).pem")))
            let text = info.description
            #expect(!text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) },
                    "\(name): \(text.debugDescription)")
            switch name {
            case "escsan": #expect(text.contains("DNS:\\x1b[2J\\x1b]0;pwned\\x07.example"), "\(text.debugDescription)")
            case "utf8san": #expect(text.contains("DNS:bad\\xff\\xfe\\xc0.example"), "\(text.debugDescription)")
            case "hostilecn":
                #expect(info.commonName.map(TLSUntrustedText.escape) == "local\\x00host\\x1b[1m\\x7f!",
                        "\(String(describing: info.commonName?.debugDescription))")
            default: break
            }
        }
    }

    @Test("openssl s_server presenting them: the same verdicts over a socket", arguments: allBackends)
    func realPeer(backend: Backend) throws {
        let f = try Self.factory.get()
        // The alert our client sends is written as a literal per case, not read from
        // TLSKit's own table, so a wrong table entry shows here.
        let rows: [(String, [String], String, String, Bool, TLSError.VerificationFailure?, String?)] = [
            ("bad RSA leaf signature", ["badrsaleaf", "rsainter"], "rsaleaf", "root", false, .badSignature, "decrypt_error"),
            ("partial chain, default", ["good", "inter"], "good", "inter", false, .unknownIssuer, "unknown_ca"),
            ("partial chain, allowed", ["good", "inter"], "good", "inter", true, nil, nil),
        ]
        for (name, chain, key, trust, partialChains, failure, alert) in rows {
            let (server, port) = try startOpenSSLServer([
                "-cert", f.path("\(chain[0]).pem"),
                "-cert_chain", f.path("\(chain[1]).pem"), "-key", f.path("\(key).key"), "-www", "-naccept", "1",
            ])
            defer { server.stop() }
            var client = TLSConfiguration.makeClientConfiguration()
            client.trustRoots = .caFile(f.path("\(trust).pem"))
            client.trustsPartialChains = partialChains
            client.serverName = "localhost"
            guard let failure else {
                let socket = try connectToPeer(port: port, context: backend.type.makeContext(client))
                #expect(socket.connection.peerVerification == .verified, "\(name)")
                continue
            }
            let error = try #require(throws: TLSError.self, "\(name)") {
                try connectToPeer(port: port, context: backend.type.makeContext(client))
            }
            #expect(error.code == .certificateVerificationFailed, "\(name): \(error)")
            #expect(error.verificationFailure == failure, "\(name): \(error)")
            #expect(error.alert?.name == alert, "\(name): \(error)")
        }
    }
}
