import Foundation
import Testing
import TLSKit

/// Protocol features: the same results on every backend that has the capability, and a
/// loud `.unsupported` at context creation on one that has not.
@Suite("Protocol features", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct FeatureTests {
    /// Runs `body` when the backend has `capability`; otherwise asserts that configuring
    /// the feature is refused with `.unsupported` naming the backend.
    func whenCapable(_ backend: Backend, _ capability: TLSCapabilities,
                     refused configure: (inout TLSConfiguration) -> Void, _ body: () throws -> Void) throws {
        // Which branch runs is itself asserted: a capability dropped by mistake would
        // otherwise turn the feature test into a refusal test that passes.
        #expect(backend.type.capabilities.contains(capability) == Self.claims(backend, capability),
                "\(backend.name) capability \(capability.rawValue)")
        if backend.type.capabilities.contains(capability) {
            try body()
        } else {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configure(&configuration)
            let error = try #require(throws: TLSError.self) { try backend.type.makeContext(configuration) }
            #expect(error.code == .unsupported)
            #expect(error.message.contains(backend.name))
        }
    }

    /// What each backend claims, written out here rather than read from the backend.
    static let missing: [String: TLSCapabilities] = ["OpenSSL": [], "GnuTLS": [.multipleTicketKeys]]

    static func claims(_ backend: Backend, _ capability: TLSCapabilities) -> Bool {
        guard let missing = missing[backend.name] else { return false }
        return !missing.contains(capability)
    }

    @Test("cipher suites by IANA name, negotiated and reported with that name", arguments: allBackends)
    func cipherSuites(backend: Backend) throws {
        try whenCapable(backend, .cipherSuiteSelection,
                        refused: { $0.cipherSuites = ["TLS_AES_128_GCM_SHA256"]; $0.minimumTLSVersion = .tls13 }) {
            let fixture = try Fixture(backend)
            for suite in ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"] {
                let link = try MemoryLink(fixture, client: { $0.cipherSuites = [suite]; $0.minimumTLSVersion = .tls13 })
                #expect(link.handshake().client.last == Step(1, .none), "\(suite)")
                #expect(link.client.cipherSuite == suite)
                #expect(link.server.cipherSuite == suite)
            }
            for suite in ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"] {
                let link = try MemoryLink(fixture, client: { $0.cipherSuites = [suite]; $0.maximumTLSVersion = .tls12 })
                #expect(link.handshake().client.last == Step(1, .none), "\(suite)")
                #expect(link.client.cipherSuite == suite)
                #expect(link.server.cipherSuite == suite)
            }
            // No suite in common: handshake_failure.
            let none = try MemoryLink(fixture, client: { $0.cipherSuites = ["TLS_AES_128_GCM_SHA256"]; $0.minimumTLSVersion = .tls13 },
                                      server: { $0.cipherSuites = ["TLS_AES_256_GCM_SHA384"]; $0.minimumTLSVersion = .tls13 })
            let (client, server) = none.handshake()
            #expect(server.last == Step(-1, .ssl))
            #expect(none.server.lastError?.code == .protocolFailure)
            #expect(client.last == Step(-1, .ssl))
            #expect(none.client.lastError?.alert == .handshakeFailure)
        }
        // Names are checked before any backend: unknown, or no suite for an enabled version.
        for change: (inout TLSConfiguration) -> Void in [
            { $0.cipherSuites = ["TLS_RSA_WITH_NULL_MD5"] },
            { $0.cipherSuites = ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] },  // TLS 1.3 enabled, no 1.3 suite
            { $0.cipherSuites = [] },
        ] {
            var configuration = TLSConfiguration.makeClientConfiguration()
            change(&configuration)
            let error = try #require(throws: TLSError.self) { try backend.type.makeContext(configuration) }
            #expect(error.code == .invalidConfiguration, "\(error)")
        }
    }

    @Test("key-exchange groups by name; the negotiated group reported the same way; x25519 by default",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func groups(backend: Backend, version: TLSVersion) throws {
        try whenCapable(backend, .groupSelection, refused: { $0.keyExchangeGroups = ["x25519"] }) {
            let fixture = try Fixture(backend)
            let plain = try MemoryLink(fixture, client: { $0.maximumTLSVersion = version })
            #expect(plain.handshake().client.last == Step(1, .none))
            #expect(try plain.client.negotiatedGroup?.name == "x25519")
            #expect(try plain.server.negotiatedGroup?.name == "x25519")
            // TLS 1.2: supported_groups also limits the curve of the ECDSA certificate
            // (RFC 4492), here P-256, so P-384 alone cannot work there.
            for group in version == .tls13 ? ["secp256r1", "secp384r1"] : ["secp256r1"] {
                let link = try MemoryLink(fixture, client: { $0.keyExchangeGroups = [group]; $0.maximumTLSVersion = version })
                #expect(link.handshake().client.last == Step(1, .none), "\(group)")
                #expect(try link.client.negotiatedGroup?.name == group)
                #expect(try link.server.negotiatedGroup?.name == group)
            }
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.keyExchangeGroups = ["brainpool-fantasy"]
        let error = try #require(throws: TLSError.self) { try backend.type.makeContext(configuration) }
        #expect(error.code == .invalidConfiguration)
    }

    @Test("ALPN selection callback on the server; nil refuses with no_application_protocol", arguments: allBackends)
    func alpnSelector(backend: Backend) throws {
        let pickLast = TLSApplicationProtocolSelector { $0.last }
        try whenCapable(backend, .alpnSelectionCallback, refused: { $0.applicationProtocolSelector = pickLast }) {
            let fixture = try Fixture(backend)
            let link = try MemoryLink(fixture, client: { $0.applicationProtocols = ["h2", "spdy/3", "http/1.1"] },
                                      server: { $0.applicationProtocolSelector = pickLast })
            #expect(link.handshake().client.last == Step(1, .none))
            #expect(link.client.negotiatedApplicationProtocol == "http/1.1")
            #expect(link.server.negotiatedApplicationProtocol == "http/1.1")

            let refuse = try MemoryLink(fixture, client: { $0.applicationProtocols = ["h2"] },
                                        server: { $0.applicationProtocolSelector = TLSApplicationProtocolSelector { _ in nil } })
            let (client, server) = refuse.handshake()
            #expect(server.last == Step(-1, .ssl))
            #expect(client.last == Step(-1, .ssl))
            #expect(refuse.client.lastError?.alert == .noApplicationProtocol)
        }
    }

    @Test("key log: SSLKEYLOGFILE lines on both ends, and they decrypt the captured records", arguments: allBackends)
    func keyLog(backend: Backend) throws {
        let clientLines = Locked<[String]>([]), serverLines = Locked<[String]>([])
        let clientLogger = TLSKeyLogger { line in clientLines.withLock { $0.append(line) } }
        let serverLogger = TLSKeyLogger { line in serverLines.withLock { $0.append(line) } }
        try whenCapable(backend, .keyLogging, refused: { $0.keyLogger = clientLogger }) {
            let fixture = try Fixture(backend)
            let link = try MemoryLink(fixture, client: { $0.keyLogger = clientLogger; $0.cipherSuites = ["TLS_AES_128_GCM_SHA256"]; $0.minimumTLSVersion = .tls13 },
                                      server: { $0.keyLogger = serverLogger })
            #expect(link.handshake().client.last == Step(1, .none))
            let client = clientLines.withLock { $0 }, server = serverLines.withLock { $0 }
            let labels = Set(client.map { String($0.split(separator: " ")[0]) })
            // A TLS 1.3 handshake without early data: the four traffic secrets and the
            // exporter secret, nothing else (no TLS 1.2 CLIENT_RANDOM, no early secrets).
            #expect(labels == ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                               "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"], "\(labels)")
            // Both ends log the same four traffic secrets, each exactly once.
            let traffic = ["CLIENT_HANDSHAKE_TRAFFIC_SECRET ", "SERVER_HANDSHAKE_TRAFFIC_SECRET ",
                           "CLIENT_TRAFFIC_SECRET_0 ", "SERVER_TRAFFIC_SECRET_0 "]
            let clientTraffic = client.filter { line in traffic.contains { line.hasPrefix($0) } }
            let serverTraffic = server.filter { line in traffic.contains { line.hasPrefix($0) } }
            #expect(clientTraffic.count == 4, "\(client)")
            #expect(Set(serverTraffic) == Set(clientTraffic), "server \(server) client \(client)")
            for line in client {
                let parts = line.split(separator: " ")
                #expect(parts.count == 3 && parts[1].count == 64, "\(line)")
            }
            // Independent check: decrypt the client's first application record with the
            // logged CLIENT_TRAFFIC_SECRET_0 (HKDF-Expand-Label + AES-128-GCM in Python).
            link.exchange()
            #expect(link.client.step { $0.write(Array("secret message".utf8)) } == Step(14, .none))
            let record = link.clientWire.takeOutgoing()
            let secret = try #require(client.first { $0.hasPrefix("CLIENT_TRAFFIC_SECRET_0 ") }?.split(separator: " ")[2])
            let plain = try decryptTLS13Record(record, secretHex: String(secret))
            #expect(plain == "secret message")
        }
    }

    /// AES-128-GCM TLS 1.3 record decryption with Python's `cryptography`, sequence 0.
    func decryptTLS13Record(_ record: [UInt8], secretHex: String) throws -> String {
        let script = """
            import sys, binascii
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            secret = binascii.unhexlify(sys.argv[1]); record = binascii.unhexlify(sys.argv[2])
            def label(l, n):
                full = b"tls13 " + l
                info = n.to_bytes(2, "big") + bytes([len(full)]) + full + b"\\x00"
                return HKDFExpand(hashes.SHA256(), n, info).derive(secret)
            key, iv = label(b"key", 16), label(b"iv", 12)
            plain = AESGCM(key).decrypt(iv, record[5:], record[:5])
            assert plain[-1] == 23, "inner content type"
            sys.stdout.write(plain[:-1].decode())
            """
        let peer = try Peer(try tool("python3"), ["-c", script, secretHex, record.map { String(format: "%02x", $0) }.joined()])
        peer.closeInput()
        let status = peer.wait(timeout: 30)
        guard status == 0 else {
            throw TLSError(.internalError, "decryption failed: \(peer.errorOutput)", backend: "tests")
        }
        return peer.output
    }

    @Test("session resumption: tickets across connections, contexts with shared keys, and exported bytes",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func resumption(backend: Backend, version: TLSVersion) throws {
        let keys = [TLSSessionTicketKey.generate()]
        try whenCapable(backend, .sessionResumption, refused: { $0.sessionTicketKeys = keys }) {
            let fixture = try Fixture(backend)
            func server(_ keys: [TLSSessionTicketKey]) throws -> TLSContext {
                try fixture.serverContext { $0.sessionTicketKeys = keys; $0.maximumTLSVersion = version }
            }
            let client = try fixture.clientContext()
            let first = try MemoryLink(client: client, server: server(keys))
            #expect(first.handshake().client.last == Step(1, .none))
            #expect(!first.client.isSessionReused)
            first.exchange()
            _ = first.client.readStep()  // TLS 1.3: take the NewSessionTicket
            let session = try #require(first.client.session)
            #expect(session.backend == backend.id)

            // The bytes survive a round trip (a file, another process).
            let restored = TLSSession(bytes: session.bytes, backend: backend.id)
            for serverContext in [try server(keys), try server(keys)] {
                let again = try MemoryLink(client: client, server: serverContext)
                try again.client.setSession(restored)
                #expect(again.handshake().client.last == Step(1, .none))
                #expect(again.client.isSessionReused)
                #expect(again.server.isSessionReused)
            }

            // Another key: the ticket is not accepted; a full handshake follows.
            let stranger = try MemoryLink(client: client, server: server([TLSSessionTicketKey.generate()]))
            try stranger.client.setSession(restored)
            #expect(stranger.handshake().client.last == Step(1, .none))
            #expect(!stranger.client.isSessionReused)

            // Rotation: a new key first, the old one still accepted where claimed; where
            // not, two keys are refused at context creation, naming the backend.
            #expect(backend.type.capabilities.contains(.multipleTicketKeys) == Self.claims(backend, .multipleTicketKeys))
            if backend.type.capabilities.contains(.multipleTicketKeys) {
                let rotated = try MemoryLink(client: client, server: server([TLSSessionTicketKey.generate()] + keys))
                try rotated.client.setSession(restored)
                #expect(rotated.handshake().client.last == Step(1, .none))
                #expect(rotated.client.isSessionReused)
            } else {
                let error = try #require(throws: TLSError.self) { try server([TLSSessionTicketKey.generate()] + keys) }
                #expect(error.code == .unsupported, "\(error)")
                #expect(error.backend == backend.id)
                #expect(error.message.contains(backend.name), "\(error)")
            }

            // Misuse: after the handshake, or another backend's session.
            let late = try #require(throws: TLSError.self) { try first.client.setSession(restored) }
            #expect(late.code == .invalidState, "\(late)")
            let other = try MemoryLink(client: client, server: server(keys))
            let foreign = try #require(throws: TLSError.self) {
                try other.client.setSession(TLSSession(bytes: session.bytes, backend: "Elsewhere"))
            }
            #expect(foreign.code == .invalidState, "\(foreign)")
            #expect(foreign.message.contains("Elsewhere"), "\(foreign)")
        }
    }

    @Test("exporter and channel bindings: equal on both ends", arguments: allBackends, [TLSVersion.tls13, .tls12])
    func exporter(backend: Backend, version: TLSVersion) throws {
        let fixture = try Fixture(backend)
        let link = try MemoryLink(fixture, client: { $0.maximumTLSVersion = version })
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(backend.type.capabilities.contains(.keyingMaterialExporter) == Self.claims(backend, .keyingMaterialExporter))
        guard backend.type.capabilities.contains(.keyingMaterialExporter) else {
            let error = try #require(throws: TLSError.self) { try link.client.exportKeyingMaterial(label: "x", length: 8) }
            #expect(error.code == .unsupported)
            return
        }
        let a = try link.client.exportKeyingMaterial(label: "EXPERIMENTAL tlskit", context: [1, 2, 3], length: 48)
        let b = try link.server.exportKeyingMaterial(label: "EXPERIMENTAL tlskit", context: [1, 2, 3], length: 48)
        #expect(a == b)
        #expect(a.count == 48)
        #expect(try link.client.exportKeyingMaterial(label: "EXPERIMENTAL other", length: 48) != a)
        #expect(try link.client.exportKeyingMaterial(label: "EXPERIMENTAL tlskit", context: [], length: 48) != a)

        let endPoint = try link.client.channelBinding(.tlsServerEndPoint)
        #expect(endPoint == (try link.server.channelBinding(.tlsServerEndPoint)))
        #expect(endPoint.count == 32)
        #expect(endPoint == (try backend.type.certificateInfo(der: firstDER(ofPEM: fixture.identity.certificateChainPEM)).sha256Fingerprint))
        if version == .tls13 {
            let binding = try link.client.channelBinding(.tlsExporter)
            #expect(binding == (try link.server.channelBinding(.tlsExporter)))
            #expect(binding.count == 32)
        } else {
            let error = try #require(throws: TLSError.self) { try link.client.channelBinding(.tlsExporter) }
            #expect(error.code == .unsupported)
        }
        let early = try MemoryLink(fixture)
        let error = try #require(throws: TLSError.self) { try early.client.exportKeyingMaterial(label: "x", length: 8) }
        #expect(error.code == .handshakeNotComplete)
    }

    @Test("KeyUpdate: requested and answered, data flows on; refused on TLS 1.2 and before the handshake",
          arguments: allBackends)
    func keyUpdate(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let early = try MemoryLink(fixture)
        #expect(backend.type.capabilities.contains(.keyUpdate) == Self.claims(backend, .keyUpdate))
        guard backend.type.capabilities.contains(.keyUpdate) else {
            #expect(early.client.step { $0.requestKeyUpdate() } == Step(-1, .ssl))
            #expect(early.client.lastError?.code == .unsupported)
            return
        }
        #expect(early.client.step { $0.requestKeyUpdate() } == Step(-1, .ssl))
        #expect(early.client.lastError?.code == .handshakeNotComplete)

        let link = try MemoryLink(fixture)
        #expect(link.handshake().client.last == Step(1, .none))
        link.exchange()
        _ = link.client.readStep()
        for round in 0..<4 {
            let (requester, responder) = round % 2 == 0 ? (link.client, link.server) : (link.server, link.client)
            #expect(requester.step { $0.requestKeyUpdate(updatePeer: true) } == Step(1, .none))
            link.exchange()
            #expect(responder.readStep().0 == Step(-1, .wantRead))  // processes the KeyUpdate, answers it
            #expect(responder.step { $0.write(Array("after \(round)".utf8)) }.result > 0)
            link.exchange()
            let (step, bytes) = requester.readStep()
            #expect(step.result > 0, "round \(round): \(step) \(String(describing: requester.lastError))")
            #expect(bytes == Array("after \(round)".utf8))
            #expect(requester.step { $0.write(Array("back".utf8)) } == Step(4, .none))
            link.exchange()
            #expect(responder.readStep().1 == Array("back".utf8))
        }
        let tls12 = try MemoryLink(fixture, client: { $0.maximumTLSVersion = .tls12 })
        #expect(tls12.handshake().client.last == Step(1, .none))
        #expect(tls12.client.step { $0.requestKeyUpdate() } == Step(-1, .ssl))
        #expect(tls12.client.lastError?.code == .unsupported)
    }

    @Test("OCSP stapling: a good staple accepted, a revoked one and a missing required one refused", arguments: allBackends)
    func ocspStapling(backend: Backend) throws {
        try whenCapable(backend, .ocspStapling, refused: { $0.ocspStapling = .require }) {
            let f = try VerificationMatrixTests.factory.get().copy()
            defer { f.remove() }
            for name in ["good", "revoked"] {
                try f.openssl(["ocsp", "-index", f.path("index.txt"), "-rsigner", f.path("inter.pem"), "-rkey", f.path("inter.key"),
                               "-CA", f.path("inter.pem"), "-issuer", f.path("inter.pem"), "-cert", f.path("\(name).pem"),
                               "-respout", f.path("\(name).ocsp"), "-ndays", "1"])
            }
            func server(_ leaf: String, staple: Bool) throws -> TLSContext {
                var configuration = TLSConfiguration.makeServerConfiguration(
                    certificateChain: .pem(try f.read("\(leaf).pem") + f.read("inter.pem")), privateKey: .file(f.path("\(leaf).key")))
                if staple { configuration.ocspResponse = Array(try Data(contentsOf: URL(fileURLWithPath: f.path("\(leaf).ocsp")))) }
                return try backend.type.makeContext(configuration)
            }
            let client = try CredentialTests.client(backend) { $0.ocspStapling = .require }
            CredentialTests.expectHandshake(try MemoryLink(client: client, server: server("good", staple: true)), "good staple")

            let revoked = try MemoryLink(client: client, server: server("revoked", staple: true))
            #expect(revoked.handshake().client.last == Step(-1, .ssl))
            #expect(revoked.client.lastError?.verificationFailure == .revoked, "\(String(describing: revoked.client.lastError))")
            #expect(revoked.client.lastError?.alert == .badCertificateStatusResponse)
            // The core's rule (TLSOCSPRefusal.judge) words the reason, the same on both backends.
            #expect(revoked.client.lastError?.message.hasSuffix(": the stapled OCSP response says the certificate is revoked") == true)
            #expect(revoked.server.lastError?.alert == .badCertificateStatusResponse)

            let missing = try MemoryLink(client: client, server: server("good", staple: false))
            #expect(missing.handshake().client.last == Step(-1, .ssl))
            #expect(missing.client.lastError?.code == .certificateVerificationFailed, "\(String(describing: missing.client.lastError))")
            // No category fits a missing staple: `.other`, the same on both backends.
            #expect(missing.client.lastError?.verificationFailure == .other)
            #expect(missing.client.lastError?.message.hasSuffix(": the server sent no OCSP staple, and one is required") == true)
            #expect(missing.client.lastError?.alert == .badCertificateStatusResponse)
            #expect(missing.server.lastError?.alert == .badCertificateStatusResponse)

            // Requested but optional: no staple is fine.
            let optional = try CredentialTests.client(backend) { $0.ocspStapling = .request }
            CredentialTests.expectHandshake(try MemoryLink(client: optional, server: server("good", staple: false)), "optional")
        }
    }
}
