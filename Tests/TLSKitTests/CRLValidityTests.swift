import Foundation
import Testing
import TLSKit

/// Verification rows that had no exact test on both backends: CRLs outside their own
/// validity period (a CRL is evidence of revocation whatever its dates: its nextUpdate
/// passed or its lastUpdate to come changes nothing, Docs/verification.md), and a
/// self-signed certificate that names a trusted CA as its subject but has another key.
@Suite("CRL validity and impostor roots", .timeLimit(.minutes(5)), .sharesProcess)
struct CRLValidityTests {
    static func makeFactory() throws -> CertificateFactory {
        let f = try CertificateFactory()
        let local = ["localhost", "127.0.0.1", "::1"]
        try f.issue("root", issuer: nil, commonName: "TLSKit CRL root", days: (-1, 3), isCA: true, extendedKeyUsage: nil)
        try f.issue("inter", issuer: "root", commonName: "TLSKit CRL intermediate", isCA: true, extendedKeyUsage: nil)
        try f.issue("good", issuer: "inter", names: local)
        try f.issue("revoked", issuer: "inter", names: local)
        try f.revoke("revoked", ca: "inter")
        for (name, last, next) in [("expired", -10, -1), ("future", 1, 10), ("current", -1, 2)] {
            try f.openssl(["ca", "-config", f.path("ca.cnf"), "-gencrl",
                           "-crl_lastupdate", CertificateFactory.asn1Time(daysFromNow: last),
                           "-crl_nextupdate", CertificateFactory.asn1Time(daysFromNow: next),
                           "-out", f.path("\(name).crl.pem"), "-cert", f.path("inter.pem"), "-keyfile", f.path("inter.key")])
        }
        // Subject "CN=TLSKit CRL root", self-signed with a key of its own.
        try f.issue("impostor", issuer: nil, commonName: "TLSKit CRL root", names: local)
        return f
    }

    static let factory = Result { try makeFactory() }

    static func handshake(_ backend: Backend, chain: [String], crl: String?) throws -> MemoryLink {
        let f = try factory.get()
        let pem = try chain.map { try f.read("\($0).pem") }.joined()
        let server = TLSConfiguration.makeServerConfiguration(certificateChain: .pem(pem),
                                                              privateKey: .file(f.path("\(chain[0]).key")))
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .caFile(f.path("root.pem"))
        client.serverName = "localhost"
        if let crl { client.certificateRevocationLists = [.file(f.path("\(crl).crl.pem"))] }
        let link = try MemoryLink(client: backend.type.makeContext(client), server: backend.type.makeContext(server))
        link.handshake()
        return link
    }

    @Test("a CRL whose nextUpdate has passed, or whose lastUpdate is to come: still revokes what it lists, passes the rest",
          arguments: allBackends, ["expired", "future", "current"])
    func crlOutsideItsPeriod(backend: Backend, crl: String) throws {
        let revoked = try Self.handshake(backend, chain: ["revoked", "inter"], crl: crl)
        #expect(revoked.client.isHandshakeComplete == false)
        #expect(revoked.client.lastError?.code == .certificateVerificationFailed, "\(String(describing: revoked.client.lastError))")
        #expect(revoked.client.lastError?.verificationFailure == .revoked, "\(String(describing: revoked.client.lastError))")
        #expect(revoked.server.lastError?.alert == .certificateRevoked, "\(String(describing: revoked.server.lastError))")

        let good = try Self.handshake(backend, chain: ["good", "inter"], crl: crl)
        #expect(good.client.isHandshakeComplete, "\(String(describing: good.client.lastError))")
        #expect(good.client.peerVerification == .verified)
    }

    @Test("a self-signed certificate with a trusted root's subject and another key: selfSigned, not badSignature",
          arguments: allBackends)
    func impostorRoot(backend: Backend) throws {
        let link = try Self.handshake(backend, chain: ["impostor"], crl: nil)
        #expect(link.client.isHandshakeComplete == false)
        #expect(link.client.lastError?.code == .certificateVerificationFailed, "\(String(describing: link.client.lastError))")
        #expect(link.client.lastError?.verificationFailure == .selfSigned, "\(String(describing: link.client.lastError))")
        #expect(link.server.lastError?.alert == .unknownCA, "\(String(describing: link.server.lastError))")
    }
}
