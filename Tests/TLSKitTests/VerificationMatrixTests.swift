import Foundation
import Testing
import TLSKit

/// The certificate matrix of the trust issue: every case on every backend, with the same
/// verdict and category, generated at run time with `openssl ca`.
@Suite("Verification matrix", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct VerificationMatrixTests {
    /// One row: what the server presents, what the client expects, and the verdict.
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// Certificates the server sends, leaf first (file names in the factory).
        let chain: [String]
        let host: String
        /// nil: the handshake succeeds.
        let failure: TLSError.VerificationFailure?
        var withCRL = false
        var testDescription: String { "\(name) → \(failure.map { "\($0)" } ?? "ok")" }
    }

    static let cases: [Case] = [
        Case(name: "valid chain with intermediate", chain: ["good", "inter"], host: "localhost", failure: nil),
        Case(name: "missing intermediate", chain: ["good"], host: "localhost", failure: .unknownIssuer),
        Case(name: "expired leaf", chain: ["expired", "inter"], host: "localhost", failure: .expired),
        Case(name: "expired intermediate", chain: ["underold", "oldinter"], host: "localhost", failure: .expired),
        Case(name: "not yet valid", chain: ["future", "inter"], host: "localhost", failure: .notYetValid),
        Case(name: "wrong host", chain: ["good", "inter"], host: "other.example", failure: .hostnameMismatch),
        Case(name: "host name case-insensitive, trailing dot", chain: ["good", "inter"], host: "LocalHost.", failure: nil),
        Case(name: "wildcard match", chain: ["wild", "inter"], host: "www.example.com", failure: nil),
        Case(name: "wildcard too deep", chain: ["wild", "inter"], host: "a.b.example.com", failure: .hostnameMismatch),
        Case(name: "wildcard does not match the bare domain", chain: ["wild", "inter"], host: "example.com", failure: .hostnameMismatch),
        Case(name: "partial-label wildcard", chain: ["partial", "inter"], host: "www.example.com", failure: .hostnameMismatch),
        Case(name: "wildcard over a two-label name", chain: ["twolabel", "inter"], host: "foo.example", failure: .hostnameMismatch),
        Case(name: "wildcard never matches an IDNA label", chain: ["wild", "inter"], host: "xn--bcher-kva.example.com", failure: .hostnameMismatch),
        Case(name: "IPv4 SAN match", chain: ["good", "inter"], host: "127.0.0.1", failure: nil),
        Case(name: "IPv6 SAN match", chain: ["good", "inter"], host: "::1", failure: nil),
        Case(name: "IP SAN mismatch", chain: ["good", "inter"], host: "127.0.0.2", failure: .hostnameMismatch),
        Case(name: "DNS name against an IP-only certificate", chain: ["iponly", "inter"], host: "localhost", failure: .hostnameMismatch),
        Case(name: "CN-only certificate (no SANs): CN is used", chain: ["cnonly", "inter"], host: "localhost", failure: nil),
        Case(name: "SANs present: no CN fallback", chain: ["cnplus", "inter"], host: "localhost", failure: .hostnameMismatch),
        Case(name: "IP address never matched against the CN", chain: ["cnip", "inter"], host: "127.0.0.1", failure: .hostnameMismatch),
        Case(name: "self-signed leaf", chain: ["selfsigned"], host: "localhost", failure: .selfSigned),
        Case(name: "unknown root", chain: ["stranger"], host: "localhost", failure: .unknownIssuer),
        Case(name: "leaf used as CA", chain: ["child", "notca", "inter"], host: "localhost", failure: .invalidCA),
        Case(name: "server certificate with only clientAuth EKU", chain: ["clientonly", "inter"], host: "localhost", failure: .invalidPurpose),
        Case(name: "revoked via CRL", chain: ["revoked", "inter"], host: "localhost", failure: .revoked, withCRL: true),
        Case(name: "CRL given, certificate not revoked", chain: ["good", "inter"], host: "localhost", failure: nil, withCRL: true),
    ]

    /// The alert the client sends for each category, written out here (RFC 8446 §6.2)
    /// rather than read from TLSKit's own table, which this test would then only echo.
    static let expectedAlerts: [TLSError.VerificationFailure: TLSAlert] = [
        .expired: .certificateExpired, .notYetValid: .badCertificate, .hostnameMismatch: .badCertificate,
        .unknownIssuer: .unknownCA, .selfSigned: .unknownCA, .invalidPurpose: .unsupportedCertificate,
        .revoked: .certificateRevoked, .invalidCA: .badCertificate, .nameConstraintsViolation: .badCertificate,
    ]

    /// Generates every certificate of the matrix once.
    static func makeFactory() throws -> CertificateFactory {
        let f = try CertificateFactory()
        let local = ["localhost", "127.0.0.1", "::1"]
        try f.issue("root", issuer: nil, commonName: "TLSKit matrix root", days: (-1, 3), isCA: true, extendedKeyUsage: nil)
        try f.issue("inter", issuer: "root", commonName: "TLSKit matrix intermediate", isCA: true, extendedKeyUsage: nil)
        try f.issue("oldinter", issuer: "root", commonName: "TLSKit expired intermediate", days: (-10, -1), isCA: true, extendedKeyUsage: nil)
        try f.issue("good", issuer: "inter", names: local)
        try f.issue("expired", issuer: "inter", names: local, days: (-10, -1))
        try f.issue("underold", issuer: "oldinter", names: local, days: (-5, 2))
        try f.issue("future", issuer: "inter", names: local, days: (1, 10))
        try f.issue("wild", issuer: "inter", names: ["*.example.com"])
        try f.issue("partial", issuer: "inter", names: ["w*.example.com"])
        try f.issue("twolabel", issuer: "inter", names: ["*.example"])
        try f.issue("iponly", issuer: "inter", commonName: "localhost", names: ["127.0.0.1"])
        try f.issue("cnonly", issuer: "inter", commonName: "localhost")
        try f.issue("cnplus", issuer: "inter", commonName: "localhost", names: ["other.example"])
        try f.issue("cnip", issuer: "inter", commonName: "127.0.0.1")
        try f.issue("selfsigned", issuer: nil, names: local)
        try f.issue("otherroot", issuer: nil, commonName: "Unknown root", isCA: true, extendedKeyUsage: nil)
        try f.issue("stranger", issuer: "otherroot", names: local)
        try f.issue("notca", issuer: "inter", commonName: "not a CA", names: ["notca.example"])
        try f.issue("child", issuer: "notca", names: local)
        try f.issue("clientonly", issuer: "inter", names: local, extendedKeyUsage: "clientAuth")
        try f.issue("revoked", issuer: "inter", names: local)
        try f.revoke("revoked", ca: "inter")
        try f.issue("weak", issuer: "inter", names: local, key: "rsa:1024")
        try f.issue("sha1", issuer: "inter", names: local, digest: "sha1")
        try f.issue("client", issuer: "inter", commonName: "TLSKit test client")
        try f.issue("strangeclient", issuer: "otherroot", commonName: "Unknown client")
        return f
    }

    static let factory = Result { try makeFactory() }

    /// The chain files concatenated, as a server presents them.
    static func chainPEM(_ factory: CertificateFactory, _ names: [String]) throws -> String {
        try names.map { try factory.read("\($0).pem") }.joined()
    }

    @Test("every case, in memory, same verdict and category on every backend", arguments: allBackends)
    func matrix(backend: Backend) throws {
        let f = try Self.factory.get()
        for row in Self.cases {
            var server = TLSConfiguration.makeServerConfiguration(
                certificateChain: .pem(try Self.chainPEM(f, row.chain)), privateKey: .file(f.path("\(row.chain[0]).key")))
            server.maximumTLSVersion = .tls13
            var client = TLSConfiguration.makeClientConfiguration()
            client.trustRoots = .caFile(f.path("root.pem"))
            client.serverName = row.host
            if row.withCRL { client.certificateRevocationLists = [.file(f.path("inter.crl.pem"))] }
            let link = try MemoryLink(client: backend.type.makeContext(client), server: backend.type.makeContext(server))
            let (clientSteps, serverSteps) = link.handshake()
            if let failure = row.failure {
                #expect(clientSteps.last == Step(-1, .ssl), "\(row.name)")
                #expect(link.client.lastError?.code == .certificateVerificationFailed, "\(row.name): \(String(describing: link.client.lastError))")
                #expect(link.client.lastError?.verificationFailure == failure, "\(row.name): \(String(describing: link.client.lastError))")
                #expect(serverSteps.last == Step(-1, .ssl), "\(row.name)")
                #expect(link.server.lastError?.code == .alertReceived, "\(row.name)")
                let alert = try #require(Self.expectedAlerts[failure], "no expected alert written for \(failure)")
                #expect(link.server.lastError?.alert == alert, "\(row.name): \(String(describing: link.server.lastError))")
            } else {
                #expect(clientSteps.last == Step(1, .none), "\(row.name): \(String(describing: link.client.lastError))")
                #expect(serverSteps.last == Step(1, .none), "\(row.name)")
                #expect(link.client.peerVerification == .verified, "\(row.name)")
                #expect(link.client.peerCertificateChain.count == row.chain.count, "\(row.name)")
                let leaf = try #require(link.client.peerCertificateInfo)
                #expect(leaf.issuer.contains("CN=TLSKit matrix intermediate"), "\(leaf.issuer)")
            }
        }
    }

    @Test("weak RSA-1024 key and SHA-1 signature from openssl s_server: badSignature", arguments: allBackends)
    func weakAlgorithms(backend: Backend) throws {
        let f = try Self.factory.get()
        for name in ["weak", "sha1"] {
            let (server, port) = try startOpenSSLServer([
                "-cert", f.path("\(name).pem"),
                "-cert_chain", f.path("inter.pem"), "-key", f.path("\(name).key"),
                "-cipher", "DEFAULT:@SECLEVEL=0", "-www", "-naccept", "1",
            ])
            defer { server.stop() }
            var client = TLSConfiguration.makeClientConfiguration()
            client.trustRoots = .caFile(f.path("root.pem"))
            client.serverName = "localhost"
            let error = try #require(throws: TLSError.self) {
                try connectToPeer(port: port, context: backend.type.makeContext(client))
            }
            #expect(error.code == .certificateVerificationFailed, "\(name): \(error)")
            #expect(error.verificationFailure == .badSignature, "\(name): \(error)")
        }
    }

    @Test("real peers presenting bad certificates: the same category as in memory", arguments: allBackends)
    func realPeersPresentingBadCertificates(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        let rows: [(String, [String], String, TLSError.VerificationFailure)] = [
            ("expired", ["expired", "inter"], "localhost", .expired),
            ("unknown root", ["stranger"], "localhost", .unknownIssuer),
            ("wrong host", ["good", "inter"], "other.example", .hostnameMismatch),
        ]
        for (name, names, host, failure) in rows {
            let chain = try write(try Self.chainPEM(f, names), to: "peer-chain.pem", in: f.directory)
            let key = f.path("\(names[0]).key")
            for peer in ["openssl", "gnutls"] {
                let (server, port) = peer == "openssl"
                    ? try startOpenSSLServer(["-cert", f.path("\(names[0]).pem"), "-cert_chain", chain, "-key", key, "-www", "-naccept", "1"])
                    : try startGnuTLSServer(["--x509certfile", chain, "--x509keyfile", key, "--http"])
                defer { server.stop() }
                var client = TLSConfiguration.makeClientConfiguration()
                client.trustRoots = .caFile(f.path("root.pem"))
                client.serverName = host
                let error = try #require(throws: TLSError.self, "\(name) via \(peer) should fail") {
                    try connectToPeer(port: port, context: backend.type.makeContext(client), serverName: host)
                }
                #expect(error.verificationFailure == failure, "\(name) via \(peer): \(error)")
                #expect(error.code == .certificateVerificationFailed, "\(name) via \(peer)")
            }
        }
    }
}
