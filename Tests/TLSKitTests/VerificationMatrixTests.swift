import Foundation
import Testing
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

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
        .badSignature: .decryptError,
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
            // The category's alert (decrypt_error), sent by us and read by s_server.
            #expect(error.alert == .decryptError, "\(name): \(error)")
            let received = PeerAlertLog.wait(for: 1, in: server, PeerAlertLog.openSSLOutcomes)
            // The same on the wire from both backends (the OpenSSL backend used to send
            // libssl's bad_certificate for X509_V_ERR_EE_KEY_TOO_SMALL / CA_MD_TOO_WEAK).
            #expect(received == [.alert(TLSAlert.decryptError.rawValue)], "\(name): \(server.errorOutput)")
        }
    }
}

/// Every row of the matrix over a socket, with `openssl s_server` and `gnutls-serv`
/// presenting the chain: the category our client reports, the alert it sends, and the
/// alert the real server says it received. Rows run in parallel (one test case each);
/// each server is started once per row and takes a TLS 1.3 and a TLS 1.2 handshake.
@Suite("Verification matrix against real servers", .timeLimit(.minutes(5)), .sharesProcess)
struct VerificationMatrixRealPeerTests {
    enum Server: String, CaseIterable { case openSSL = "openssl s_server", gnuTLS = "gnutls-serv" }

    @Test("every row against openssl s_server and gnutls-serv, TLS 1.3 and 1.2",
          arguments: allBackends, VerificationMatrixTests.cases)
    func row(backend: Backend, row: VerificationMatrixTests.Case) throws {
        let f = try VerificationMatrixTests.factory.get()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let leaf = f.path("\(row.chain[0]).pem"), key = f.path("\(row.chain[0]).key")
        let chain = try write(try VerificationMatrixTests.chainPEM(f, row.chain), to: "chain.pem", in: directory)
        let intermediates = try write(try VerificationMatrixTests.chainPEM(f, Array(row.chain.dropFirst())),
                                      to: "intermediates.pem", in: directory)
        let versions: [TLSVersion] = [.tls13, .tls12]
        for kind in Server.allCases {
            let (server, port) = kind == .openSSL
                ? try startOpenSSLServer(["-cert", leaf, "-key", key, "-www", "-naccept", "\(versions.count)"]
                                         + (row.chain.count > 1 ? ["-cert_chain", intermediates] : []))
                // -d 5: gnutls-serv logs each alert it reads ("Alert[2|48] … was received").
                : try startGnuTLSServer(["--x509certfile", chain, "--x509keyfile", key, "--http", "-d", "5"])
            defer {
                // gnutls-serv started from the test process does not end on SIGTERM
                // (Child.stop then waits 2 s before SIGKILL); its output is read by now.
                if kind == .gnuTLS { server.signal(SIGKILL) }
                server.stop()
            }
            for version in versions {
                var client = TLSConfiguration.makeClientConfiguration()
                client.trustRoots = .caFile(f.path("root.pem"))
                client.serverName = row.host
                client.maximumTLSVersion = version
                if row.withCRL { client.certificateRevocationLists = [.file(f.path("inter.crl.pem"))] }
                let context = try backend.type.makeContext(client)
                let label = "\(row.name) via \(kind.rawValue), \(version)"
                guard let failure = row.failure else {
                    let socket = try connectToPeer(port: port, context: context, serverName: row.host)
                    #expect(socket.connection.negotiatedVersion == version, "\(label)")
                    #expect(socket.connection.peerVerification == .verified, "\(label)")
                    #expect(socket.connection.peerCertificateChain.count == row.chain.count, "\(label)")
                    socket.close()
                    continue
                }
                let error = try #require(throws: TLSError.self, "\(label) should fail") {
                    try connectToPeer(port: port, context: context, serverName: row.host)
                }
                let alert = try #require(VerificationMatrixTests.expectedAlerts[failure], "no expected alert written for \(failure)")
                #expect(error.code == .certificateVerificationFailed, "\(label): \(error)")
                #expect(error.verificationFailure == failure, "\(label): \(error)")
                #expect(error.alert == alert, "\(label): \(error)")
            }
            guard let failure = row.failure else { continue }
            let alert = try #require(VerificationMatrixTests.expectedAlerts[failure])
            // What the server read, one outcome per handshake, in order (TLS 1.3, then 1.2).
            let expected: [PeerAlertLog.Outcome]
            let received: [PeerAlertLog.Outcome]
            switch kind {
            case .openSSL:
                expected = versions.map { _ in .alert(alert.rawValue) }
                received = PeerAlertLog.wait(for: versions.count, in: server, PeerAlertLog.openSSLOutcomes)
            case .gnuTLS:
                // GnuTLS reads a TLS 1.3 client's alert only when it is protected: libssl 3.0
                // sent it unprotected ("Decryption has failed"), until the OpenSSL backend
                // deferred the verdict to its handshake keys (OpenSSLRecordProtection).
                expected = versions.map { _ in .alert(alert.rawValue) }
                received = PeerAlertLog.wait(for: versions.count, in: server, PeerAlertLog.gnuTLSOutcomes)
            }
            #expect(received == expected, "\(row.name) via \(kind.rawValue): \(server.errorOutput.suffix(2000))")
        }
    }
}
