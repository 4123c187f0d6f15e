#if OpenSSL && GnuTLS
import Testing
import TLSKit

/// With both traits: an OpenSSL client against a GnuTLS server and the reverse, in one
/// process, in memory and over loopback TCP, TLS 1.2 and 1.3.
@Suite("Cross-backend", .timeLimit(.minutes(5)), .sharesProcess)
struct CrossBackendTests {
    struct Pairing: CustomTestStringConvertible, Sendable {
        let client: any TLSBackend.Type
        let server: any TLSBackend.Type
        var testDescription: String { "\(client.id) client → \(server.id) server" }
    }

    static let pairings = [
        Pairing(client: OpenSSLBackend.self, server: GnuTLSBackend.self),
        Pairing(client: GnuTLSBackend.self, server: OpenSSLBackend.self),
    ]

    private func contexts(_ pairing: Pairing, version: TLSVersion,
                          client change: (inout TLSConfiguration) -> Void = { _ in })
        throws -> (client: TLSContext, server: TLSContext, identity: TLSIdentity) {
        let identity = try pairing.server.makeSelfSignedIdentity(
            commonName: "localhost", subjectAlternativeNames: ["localhost", "127.0.0.1"], validityDays: 1)
        var server = TLSConfiguration.makeServerConfiguration(identity: identity)
        server.maximumTLSVersion = version
        server.applicationProtocols = ["h2", "http/1.1"]
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .certificates([.pem(identity.certificateChainPEM)])
        client.serverName = "localhost"
        client.applicationProtocols = ["http/1.1"]
        change(&client)
        return (try pairing.client.makeContext(client), try pairing.server.makeContext(server), identity)
    }

    @Test("in memory: handshake, data both ways, shutdown 0 then 1", arguments: pairings, [TLSVersion.tls13, .tls12])
    func inMemory(pairing: Pairing, version: TLSVersion) throws {
        let (clientContext, serverContext, identity) = try contexts(pairing, version: version)
        let link = try MemoryLink(client: clientContext, server: serverContext)
        let (client, server) = link.handshake()
        #expect(client.last == Step(1, .none))
        #expect(server.last == Step(1, .none))
        #expect(client.dropLast().allSatisfy { $0 == Step(-1, .wantRead) })
        #expect(server.dropLast().allSatisfy { $0 == Step(-1, .wantRead) })
        #expect(link.client.negotiatedVersion == version)
        #expect(link.server.negotiatedVersion == version)
        #expect(link.client.cipherSuite == link.server.cipherSuite)
        #expect(link.client.negotiatedApplicationProtocol == "http/1.1")
        #expect(link.server.negotiatedApplicationProtocol == "http/1.1")
        #expect(link.server.requestedServerName == "localhost")
        #expect(link.client.peerCertificateChain == [firstDER(ofPEM: identity.certificateChainPEM)])

        let message = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        #expect(link.client.step { $0.write(message) } == Step(100_000, .none))
        link.exchange()
        var received: [UInt8] = []
        for _ in 0..<1000 { let (step, chunk) = link.server.readStep(); if step.result <= 0 { break }; received += chunk }
        #expect(received == message)
        #expect(link.server.step { $0.write(Array("ok".utf8)) } == Step(2, .none))
        link.exchange()
        #expect(link.client.readStep().1 == Array("ok".utf8))

        #expect(link.client.step { $0.shutdown() } == Step(0, .none))
        link.exchange()
        #expect(link.server.readStep().0 == Step(0, .zeroReturn))
        #expect(link.server.step { $0.shutdown() } == Step(1, .none))
        link.exchange()
        #expect(link.client.step { $0.shutdown() } == Step(1, .none))
    }

    @Test("over loopback TCP with the blocking helpers", arguments: pairings, [TLSVersion.tls13, .tls12])
    func loopback(pairing: Pairing, version: TLSVersion) throws {
        let (clientContext, serverContext, _) = try contexts(pairing, version: version)
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        let server = Background { () -> [UInt8] in
            let socket = try listener.accept(context: serverContext, timeout: .seconds(20))
            let bytes = try socket.read()
            try socket.write(bytes.reversed())
            try socket.shutdown(waitForPeer: true)
            return bytes
        }
        let socket = try TLSSocket.connect(host: "127.0.0.1", port: listener.port, context: clientContext,
                                           serverName: "localhost", timeout: .seconds(20))
        #expect(socket.connection.negotiatedVersion == version)
        try socket.write(Array("abc".utf8))
        #expect(try socket.read() == Array("cba".utf8))
        #expect(try socket.read() == [])
        try socket.shutdown()
        #expect(try server.join() == Array("abc".utf8))
    }

    /// One verification category, failed by one backend and seen by the other.
    struct ParityCase: CustomTestStringConvertible, Sendable {
        enum Certificates: Sendable { case matrix, verdicts }
        let failure: TLSError.VerificationFailure
        /// Which generated set the chain comes from (each has its own root).
        var certificates = Certificates.matrix
        /// What the server presents, leaf first; its key is `key` or the leaf's.
        var chain = ["good", "inter"]
        var key: String? = nil
        var host = "localhost"
        var withCRL = false
        var pinned = false
        /// The server verifies: it requires a client certificate, the client sends none.
        var serverVerifies = false
        /// The alert the verifier sends, written out here (RFC 8446 §6.2, and what
        /// libssl's `ssl_x509err2alert` sends), not read from TLSKit's table.
        let alert: TLSAlert
        /// TLS 1.2, where it differs (1.2 has no certificate_required).
        var alert12: TLSAlert? = nil
        var testDescription: String { "\(failure)" }
    }

    /// Every category the matrix and the verdict suites produce (and pins, and a missing
    /// client certificate): `other` has no certificate that makes it on both libraries.
    static let parityCases: [ParityCase] = [
        ParityCase(failure: .hostnameMismatch, host: "other.example", alert: .badCertificate),
        ParityCase(failure: .unknownIssuer, chain: ["stranger"], alert: .unknownCA),
        ParityCase(failure: .selfSigned, chain: ["selfsigned"], alert: .unknownCA),
        ParityCase(failure: .expired, chain: ["expired", "inter"], alert: .certificateExpired),
        ParityCase(failure: .notYetValid, chain: ["future", "inter"], alert: .badCertificate),
        ParityCase(failure: .badSignature, certificates: .verdicts, chain: ["badleaf", "inter"], key: "good", alert: .decryptError),
        ParityCase(failure: .invalidCA, chain: ["child", "notca", "inter"], alert: .badCertificate),
        ParityCase(failure: .nameConstraintsViolation, certificates: .verdicts, chain: ["evildns", "constrained"],
                   host: "evil.test", alert: .badCertificate),
        ParityCase(failure: .invalidPurpose, chain: ["clientonly", "inter"], alert: .unsupportedCertificate),
        ParityCase(failure: .revoked, chain: ["revoked", "inter"], withCRL: true, alert: .certificateRevoked),
        ParityCase(failure: .pinMismatch, pinned: true, alert: .badCertificate),
        ParityCase(failure: .noCertificate, serverVerifies: true, alert: .certificateRequired, alert12: .handshakeFailure),
    ]

    @Test("the same verification verdict and alert across backends, every category, TLS 1.3 and 1.2",
          arguments: pairings, parityCases)
    func verificationParity(pairing: Pairing, row: ParityCase) throws {
        let f = try (row.certificates == .matrix ? VerificationMatrixTests.factory : VerificationVerdictTests.factory).get()
        for version in [TLSVersion.tls13, .tls12] {
            let alert = version == .tls12 ? row.alert12 ?? row.alert : row.alert
            var server = TLSConfiguration.makeServerConfiguration(
                certificateChain: .pem(try VerificationMatrixTests.chainPEM(f, row.chain)),
                privateKey: .file(f.path("\(row.key ?? row.chain[0]).key")))
            server.maximumTLSVersion = version
            if row.serverVerifies {
                server.clientAuthentication = .required
                server.trustRoots = .caFile(f.path("root.pem"))
            }
            var client = TLSConfiguration.makeClientConfiguration()
            client.maximumTLSVersion = version
            client.trustRoots = .caFile(f.path("root.pem"))
            client.serverName = row.host
            if row.withCRL { client.certificateRevocationLists = [.file(f.path("inter.crl.pem"))] }
            if row.pinned { client.pinnedPublicKeys = [[UInt8](repeating: 7, count: 32)] }
            let link = try MemoryLink(client: pairing.client.makeContext(client), server: pairing.server.makeContext(server))
            link.recordsClientBytes = true
            let (clientSteps, serverSteps) = link.handshake()
            // The verifier (client, or server for a missing client certificate) fails with the
            // category and sends the alert; the other backend receives exactly that alert.
            let (verifier, verifierLast, peer) = row.serverVerifies
                ? (link.server, serverSteps.last, link.client) : (link.client, clientSteps.last, link.server)
            var peerLast = row.serverVerifies ? clientSteps.last : serverSteps.last
            // TLS 1.3 client certificate: the client finished before the server judged it,
            // and reads the alert next.
            if row.serverVerifies && version == .tls13 {
                #expect(peerLast == Step(1, .none), "\(version)")
                peerLast = link.client.readStep().0
            }
            let context = "\(version): \(String(describing: verifier.lastError)) / \(String(describing: peer.lastError))"
            #expect(verifierLast == Step(-1, .ssl), "\(context)")
            #expect(verifier.lastError?.code == .certificateVerificationFailed, "\(context)")
            #expect(verifier.lastError?.verificationFailure == row.failure, "\(context)")
            #expect(verifier.lastError?.alert == alert, "\(context)")
            #expect(peerLast == Step(-1, .ssl), "\(context)")
            #expect(peer.lastError?.code == .alertReceived, "\(context)")
            #expect(peer.lastError?.alert == alert, "\(context)")
            // A client that rejects the server sends, after its ClientHello, the alert and
            // nothing else (a middlebox ChangeCipherSpec aside): no Certificate, no
            // Finished. In TLS 1.3 the server already reads with the client's handshake
            // keys, so the alert is protected (one 19-byte application_data record: alert,
            // inner type, 16-byte tag), which the server above decrypted. libssl 3.0's
            // client used to send it unprotected, and the GnuTLS server only took it
            // because it accepts that one exception from OpenSSL peers (Docs/backends.md).
            if !row.serverVerifies {
                let records = link.clientRecords.dropFirst().filter { $0.type != 20 }
                if version == .tls13 {
                    #expect(records.map(\.type) == [23] && records.map(\.body.count) == [19],
                            "\(version): the client sent \(records.map { ($0.type, $0.body.count) })")
                } else {
                    #expect(records.map(\.type) == [21] && records.map(\.body) == [[2, alert.rawValue]],
                            "\(version): the client sent \(records.map { ($0.type, $0.body) })")
                }
            }
        }
    }

    @Test("features across backends: named suite and group, selector, exporter, channel bindings, KeyUpdate",
          arguments: pairings, [TLSVersion.tls13, .tls12])
    func features(pairing: Pairing, version: TLSVersion) throws {
        let suite = version == .tls13 ? "TLS_CHACHA20_POLY1305_SHA256" : "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
        let identity = try pairing.server.makeSelfSignedIdentity(
            commonName: "localhost", subjectAlternativeNames: ["localhost"], validityDays: 1)
        var server = TLSConfiguration.makeServerConfiguration(identity: identity)
        server.applicationProtocolSelector = TLSApplicationProtocolSelector { $0.first }
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .certificates([.pem(identity.certificateChainPEM)])
        client.serverName = "localhost"
        client.applicationProtocols = ["imap", "h2"]
        client.maximumTLSVersion = version
        client.minimumTLSVersion = version
        client.cipherSuites = [suite]
        client.keyExchangeGroups = ["secp256r1"]
        let link = try MemoryLink(client: pairing.client.makeContext(client), server: pairing.server.makeContext(server))
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(link.client.cipherSuite == suite && link.server.cipherSuite == suite)
        #expect(try link.client.negotiatedGroup?.name == "secp256r1")
        #expect(try link.server.negotiatedGroup?.name == "secp256r1")
        #expect(link.client.negotiatedApplicationProtocol == "imap" && link.server.negotiatedApplicationProtocol == "imap")
        let label = "EXPERIMENTAL cross"
        #expect(try link.client.exportKeyingMaterial(label: label, context: [9], length: 64)
                == link.server.exportKeyingMaterial(label: label, context: [9], length: 64))
        #expect(try link.client.channelBinding(.tlsServerEndPoint) == link.server.channelBinding(.tlsServerEndPoint))
        guard version == .tls13 else { return }
        #expect(try link.client.channelBinding(.tlsExporter) == link.server.channelBinding(.tlsExporter))
        link.exchange()
        _ = link.client.readStep()
        for (requester, responder) in [(link.client, link.server), (link.server, link.client)] {
            #expect(requester.step { $0.requestKeyUpdate(updatePeer: true) } == Step(1, .none))
            link.exchange()
            #expect(responder.readStep().0 == Step(-1, .wantRead))
            #expect(responder.step { $0.write(Array("after".utf8)) } == Step(5, .none))
            link.exchange()
            #expect(requester.readStep().1 == Array("after".utf8))
        }
    }

    @Test("garbage and the alert sent back are understood by the other backend", arguments: pairings)
    func garbageAlertParity(pairing: Pairing) throws {
        let (clientContext, serverContext, _) = try contexts(pairing, version: .tls13)
        let link = try MemoryLink(client: clientContext, server: serverContext)
        #expect(link.client.step { $0.connect() } == Step(-1, .wantRead))
        _ = link.clientWire.takeOutgoing()
        link.serverWire.deliverIncoming(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(link.server.step { $0.accept() } == Step(-1, .ssl))
        #expect(link.server.lastError?.code == .protocolFailure)
        link.exchange()
        #expect(link.client.step { $0.connect() } == Step(-1, .ssl))
        #expect(link.client.lastError?.code == .alertReceived)
        // An HTTP request's first byte, 0x47, is no TLS content type: the wire reader's
        // unexpected_message on both backends (libssl and GnuTLS would send none).
        #expect(link.client.lastError?.alert == .unexpectedMessage, "\(String(describing: link.client.lastError))")
        #expect(link.server.lastError?.alert == .unexpectedMessage, "\(String(describing: link.server.lastError))")
    }
}
#endif
