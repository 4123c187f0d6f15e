import Testing
import TLSKit

/// Certificate and host-name verification: on by default, failures categorised and
/// announced to the peer with the same alert on every backend.
@Suite("Verification", .timeLimit(.minutes(5)), .sharesProcess)
struct VerificationTests {
    @Test("wrong host name: client -1 .ssl hostnameMismatch; server -1 .ssl alert bad_certificate", arguments: allBackends)
    func wrongHost(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: { $0.serverName = "wrong.example.com" })
        let (client, server) = link.handshake()
        #expect(client.last == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .certificateVerificationFailed)
        #expect(link.client.lastError?.verificationFailure == .hostnameMismatch)
        #expect(server.last == Step(-1, .ssl))
        #expect(link.server.lastError?.code == .alertReceived)
        #expect(link.server.lastError?.alert == .badCertificate)
    }

    @Test("wrong IP address: hostnameMismatch", arguments: allBackends)
    func wrongIP(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: { $0.serverName = "127.0.0.2" })
        #expect(link.handshake().client.last == Step(-1, .ssl))
        #expect(link.client.lastError?.verificationFailure == .hostnameMismatch)
    }

    @Test("unknown issuer: a CA-issued leaf whose CA the client does not trust", arguments: allBackends)
    func unknownIssuer(backend: Backend) throws {
        let factory = try CertificateFactory()
        defer { factory.remove() }
        try factory.makeCA("ca")
        try factory.makeCA("other")
        try factory.makeLeaf("leaf", issuer: "ca", names: ["localhost"])
        let server = try backend.type.makeContext(.makeServerConfiguration(identity: factory.identity("leaf")))
        var good = TLSConfiguration.makeClientConfiguration()
        good.serverName = "localhost"
        good.trustRoots = .caFile(factory.path("ca.pem"))
        var bad = good
        bad.trustRoots = .caFile(factory.path("other.pem"))

        let trusted = try MemoryLink(client: backend.type.makeContext(good), server: server)
        #expect(trusted.handshake().client.last == Step(1, .none))
        #expect(trusted.client.peerVerification == .verified)

        let untrusted = try MemoryLink(client: backend.type.makeContext(bad), server: server)
        let (client, serverSteps) = untrusted.handshake()
        #expect(client.last == Step(-1, .ssl))
        #expect(untrusted.client.lastError?.verificationFailure == .unknownIssuer)
        #expect(serverSteps.last == Step(-1, .ssl))
        #expect(untrusted.server.lastError?.alert == .unknownCA)
    }

    @Test("self-signed and not trusted (system trust store by default): selfSigned, alert unknown_ca", arguments: allBackends)
    func selfSignedDefaultTrust(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: { $0.trustRoots = .system })
        let (client, server) = link.handshake()
        #expect(client.last == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .certificateVerificationFailed)
        #expect(link.client.lastError?.verificationFailure == .selfSigned)
        #expect(server.last == Step(-1, .ssl))
        #expect(link.server.lastError?.alert == .unknownCA)
    }

    @Test("explicitly insecure: any certificate is accepted and reported as not verified", arguments: allBackends)
    func insecure(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: {
            $0.trustRoots = .system
            $0.serverName = "wrong.example.com"
            $0.certificateVerification = .insecureNoVerification
        })
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(link.client.peerVerification == .notVerified)
    }

    @Test("host-name check off, chain still verified", arguments: allBackends)
    func noHostname(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: {
            $0.serverName = "wrong.example.com"
            $0.certificateVerification = .noHostnameVerification
        })
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(link.client.peerVerification == .verifiedWithoutHostname)
    }

    @Test("full verification needs a server name: -1 .ssl invalidConfiguration, nothing sent", arguments: allBackends)
    func missingServerName(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: { $0.serverName = nil })
        #expect(link.client.step { $0.connect() } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .invalidConfiguration)
        #expect(link.clientWire.pendingOutgoing == 0)
    }

    @Test("after the handshake: version, IANA suite, ALPN, peer chain, SNI seen", arguments: allBackends)
    func negotiatedParameters(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let link = try MemoryLink(fixture, client: { $0.applicationProtocols = ["h2", "http/1.1"] },
                                  server: { $0.applicationProtocols = ["http/1.1", "h2"] })
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(link.client.negotiatedVersion == .tls13)
        let suite = try #require(link.client.cipherSuite)
        #expect(["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"].contains(suite))
        #expect(link.server.cipherSuite == suite)
        #expect(link.client.negotiatedApplicationProtocol == "http/1.1")  // the server's preference
        #expect(link.server.negotiatedApplicationProtocol == "http/1.1")
        #expect(link.client.peerCertificateChain == [firstDER(ofPEM: fixture.identity.certificateChainPEM)])
        #expect(link.server.peerCertificateChain.isEmpty)
        #expect(link.server.requestedServerName == "localhost")
        #expect(link.client.requestedServerName == nil)
        #expect(link.server.peerVerification == .noPeerCertificate)

        let tls12 = try MemoryLink(fixture, client: { $0.maximumTLSVersion = .tls12 })
        #expect(tls12.handshake().client.last == Step(1, .none))
        #expect(tls12.client.negotiatedVersion == .tls12)
        #expect(tls12.client.cipherSuite?.hasPrefix("TLS_ECDHE_ECDSA_WITH_") == true)
        #expect(tls12.client.negotiatedApplicationProtocol == nil)
    }

    @Test("no common ALPN protocol: fatal no_application_protocol alert", arguments: allBackends)
    func alpnMismatch(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: { $0.applicationProtocols = ["h2"] },
                                  server: { $0.applicationProtocols = ["http/1.1"] })
        let (client, server) = link.handshake()
        #expect(server.last == Step(-1, .ssl))
        #expect(link.server.lastError?.code == .protocolFailure, "\(String(describing: link.server.lastError))")
        #expect(client.last == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .alertReceived)
        #expect(link.client.lastError?.alert == .noApplicationProtocol)
    }

    @Test("no common version: the server fails, the client gets alert protocol_version", arguments: allBackends)
    func versionMismatch(backend: Backend) throws {
        let link = try MemoryLink(Fixture(backend), client: { $0.minimumTLSVersion = .tls13 },
                                  server: { $0.maximumTLSVersion = .tls12 })
        let (client, server) = link.handshake()
        #expect(server.last == Step(-1, .ssl))
        #expect(link.server.lastError?.code == .protocolFailure)
        #expect(client.last == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .alertReceived)
        #expect(link.client.lastError?.alert == .protocolVersion)
    }
}
