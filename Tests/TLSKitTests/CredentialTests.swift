import Foundation
import Testing
import TLSKit

/// Loading identities in every supported form, mutual TLS, SNI identities, several key
/// types, pinning and trust sources: the same results on every backend.
@Suite("Credentials and mutual TLS", .serialized, .timeLimit(.minutes(5)), .sharesProcess)
struct CredentialTests {
    static let factory = VerificationMatrixTests.factory

    /// Client trusting the matrix root, expecting `host`.
    static func client(_ backend: Backend, host: String = "localhost",
                       _ change: (inout TLSConfiguration) -> Void = { _ in }) throws -> TLSContext {
        let f = try factory.get()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .caFile(f.path("root.pem"))
        configuration.serverName = host
        change(&configuration)
        return try backend.type.makeContext(configuration)
    }

    /// The server presenting `good` + intermediate unless changed.
    static func server(_ backend: Backend, _ change: (inout TLSConfiguration) -> Void = { _ in }) throws -> TLSContext {
        let f = try factory.get()
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: .pem(try f.read("good.pem") + f.read("inter.pem")), privateKey: .file(f.path("good.key")))
        change(&configuration)
        return try backend.type.makeContext(configuration)
    }

    /// Expects a successful handshake, returning the link.
    @discardableResult
    static func expectHandshake(_ link: MemoryLink, _ note: String) -> MemoryLink {
        let (client, server) = link.handshake()
        #expect(client.last == Step(1, .none), "\(note): client \(String(describing: link.client.lastError))")
        #expect(server.last == Step(1, .none), "\(note): server \(String(describing: link.server.lastError))")
        return link
    }

    @Test("key and certificate formats: PEM chain, DER, PKCS#8, traditional, encrypted, PKCS#12", arguments: allBackends)
    func formats(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        func o(_ arguments: [String]) throws { try f.openssl(arguments) }
        try o(["x509", "-in", f.path("selfsigned.pem"), "-outform", "DER", "-out", f.path("selfsigned.der")])
        try o(["pkcs8", "-topk8", "-nocrypt", "-in", f.path("selfsigned.key"), "-outform", "DER", "-out", f.path("selfsigned.key.der")])
        try o(["ec", "-in", f.path("good.key"), "-out", f.path("good.trad.key")])
        try o(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", f.path("good.key"), "-passout", "pass:s3cret", "-out", f.path("good.enc.key")])
        try o(["ec", "-in", f.path("good.key"), "-aes256", "-passout", "pass:s3cret", "-out", f.path("good.enctrad.key")])
        try o(["pkcs12", "-export", "-in", f.path("good.pem"), "-inkey", f.path("good.key"), "-certfile", f.path("inter.pem"),
               "-passout", "pass:p12pass", "-out", f.path("good.p12")])
        let chain = TLSDataSource.pem(try f.read("good.pem") + f.read("inter.pem"))
        let client = try Self.client(backend)
        // One DER certificate carries no intermediate: use the self-signed one, trusted as is.
        let derServer = try backend.type.makeContext(.makeServerConfiguration(credential:
            .certificateChain(.file(f.path("selfsigned.der")), privateKey: .file(f.path("selfsigned.key.der")))))
        let derClient = try Self.client(backend) { $0.trustRoots = .certificates([.file(f.path("selfsigned.der"))]) }
        let der = Self.expectHandshake(try MemoryLink(client: derClient, server: derServer), "DER certificate + DER PKCS#8 key")
        #expect(der.client.peerCertificateChain == [Array(try Data(contentsOf: URL(fileURLWithPath: f.path("selfsigned.der"))))])

        let variants: [(String, TLSCredential)] = [
            ("traditional EC key", .certificateChain(chain, privateKey: .file(f.path("good.trad.key")))),
            ("encrypted PKCS#8 key", .certificateChain(chain, privateKey: .file(f.path("good.enc.key")), passphrase: "s3cret")),
            ("encrypted traditional key", .certificateChain(chain, privateKey: .file(f.path("good.enctrad.key")), passphrase: "s3cret")),
            ("PKCS#12 bundle", .pkcs12(.file(f.path("good.p12")), password: "p12pass")),
        ]
        for (name, credential) in variants {
            let server = try backend.type.makeContext(.makeServerConfiguration(credential: credential))
            let link = Self.expectHandshake(try MemoryLink(client: client, server: server), name)
            #expect(link.client.peerCertificateChain.count == 2, "\(name)")
            #expect(link.client.peerCertificateInfo?.dnsNames == ["localhost"], "\(name)")
        }
    }

    @Test("wrong passphrase, missing passphrase, wrong PKCS#12 password, mismatched key, truncated and garbage PEM: distinct errors",
          arguments: allBackends)
    func loadingErrors(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        try f.openssl(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", f.path("good.key"), "-passout", "pass:s3cret", "-out", f.path("bad.enc.key")])
        try f.openssl(["pkcs12", "-export", "-in", f.path("good.pem"), "-inkey", f.path("good.key"),
                       "-passout", "pass:p12pass", "-out", f.path("bad.p12")])
        let chain = TLSDataSource.file(f.path("good.pem"))
        let pem = try f.read("good.pem")
        let truncated = TLSDataSource.pem(String(pem.prefix(pem.count / 2)) + "\n-----END CERTIFICATE-----\n")
        let cases: [(String, TLSCredential, TLSError.Code)] = [
            ("wrong passphrase", .certificateChain(chain, privateKey: .file(f.path("bad.enc.key")), passphrase: "nope"), .badPassphrase),
            ("missing passphrase", .certificateChain(chain, privateKey: .file(f.path("bad.enc.key"))), .badPassphrase),
            ("wrong PKCS#12 password", .pkcs12(.file(f.path("bad.p12")), password: "nope"), .badPassphrase),
            ("garbage PKCS#12", .pkcs12(.bytes([0x30, 0x03, 0x02, 0x01, 0x03]), password: "x"), .badCertificate),
            ("key of another certificate", .certificateChain(chain, privateKey: .file(f.path("expired.key"))), .keyCertificateMismatch),
            ("truncated certificate PEM", .certificateChain(truncated, privateKey: .file(f.path("good.key"))), .badCertificate),
            ("garbage certificate", .certificateChain(.bytes(Array("garbage".utf8)), privateKey: .file(f.path("good.key"))), .badCertificate),
            ("garbage key", .certificateChain(chain, privateKey: .pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")), .badPrivateKey),
        ]
        for (name, credential, code) in cases {
            let error = try #require(throws: TLSError.self, "\(name)") {
                try backend.type.makeContext(.makeServerConfiguration(credential: credential))
            }
            #expect(error.code == code, "\(name): \(error)")
            #expect(error.backend == backend.id, "\(name)")
        }
    }

    @Test("mutual TLS: good, required-and-missing, required-and-untrusted, optional-and-missing",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func mutualTLS(backend: Backend, version: TLSVersion) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        func server(_ mode: TLSClientAuthentication) throws -> TLSContext {
            try Self.server(backend) {
                $0.clientAuthentication = mode
                $0.trustRoots = .caFile(f.path("root.pem"))
                $0.maximumTLSVersion = version
            }
        }
        func client(_ name: String?) throws -> TLSContext {
            let chain = try name.map { try f.read("\($0).pem") + (name == "client" ? try f.read("inter.pem") : "") } ?? ""
            return try Self.client(backend) {
                if let name {
                    $0.certificateChain = .pem(chain)
                    $0.privateKey = .file(f.path("\(name).key"))
                }
            }
        }

        // Good: the server reads the verified client identity.
        let good = Self.expectHandshake(try MemoryLink(client: client("client"), server: server(.required)), "good")
        #expect(good.server.peerCertificateInfo?.subject == "CN=TLSKit test client")
        #expect(good.server.peerVerification == .verifiedWithoutHostname)
        #expect(good.server.peerCertificateChain.count == 2)

        // Optional and missing: fine, and reported as such.
        let optional = Self.expectHandshake(try MemoryLink(client: client(nil), server: server(.optional)), "optional")
        #expect(optional.server.peerVerification == .noPeerCertificate)
        #expect(optional.server.peerCertificateInfo == nil)

        // Required and missing / untrusted: the server fails; the client learns it from the alert.
        // The alerts are literals: TLS 1.3 has certificate_required; TLS 1.2 has no such
        // alert, so both libraries send handshake_failure; an unknown issuer is unknown_ca.
        let rows: [(String?, TLSError.VerificationFailure, TLSAlert)] = [
            (nil, .noCertificate, version == .tls12 ? .handshakeFailure : .certificateRequired),
            ("strangeclient", .unknownIssuer, .unknownCA),
        ]
        for (name, failure, expectedAlert) in rows {
            let link = try MemoryLink(client: client(name), server: server(.required))
            let (clientSteps, serverSteps) = link.handshake()
            #expect(serverSteps.last == Step(-1, .ssl), "\(String(describing: name))")
            #expect(link.server.lastError?.code == .certificateVerificationFailed)
            #expect(link.server.lastError?.verificationFailure == failure, "\(String(describing: link.server.lastError))")
            // TLS 1.3: the client finished before the server judged its certificate, so
            // the alert arrives on its next read; TLS 1.2: during its handshake.
            var last = clientSteps.last
            if last == Step(1, .none) { last = link.client.readStep().0 }
            #expect(last == Step(-1, .ssl), "\(String(describing: name))")
            #expect(link.client.lastError?.code == .alertReceived, "\(String(describing: link.client.lastError))")
            #expect(link.client.lastError?.alert == expectedAlert, "\(String(describing: link.client.lastError))")
        }
    }

    @Test("server identities chosen by SNI, with a default", arguments: allBackends)
    func serverNameIdentities(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        try f.issue("api", issuer: "inter", names: ["api.example", "*.api.example"])
        let apiChain = try f.read("api.pem") + f.read("inter.pem")
        let server = try Self.server(backend) {
            $0.serverNameCredentials = [TLSServerNameCredentials(
                serverNames: ["api.example", "*.api.example"],
                credentials: [.certificateChain(.pem(apiChain), privateKey: .file(f.path("api.key")))])]
        }
        for (host, expected) in [("api.example", ["api.example", "*.api.example"]), ("v2.api.example", ["api.example", "*.api.example"]),
                                 ("localhost", ["localhost"])] {
            let link = Self.expectHandshake(try MemoryLink(client: Self.client(backend, host: host), server: server), host)
            #expect(link.client.peerCertificateInfo?.dnsNames == expected, "\(host)")
            #expect(link.server.requestedServerName == host)
        }
    }

    @Test("a server with SNI identities only: a matching client is served, the same on every backend", arguments: allBackends)
    func serverNameIdentitiesOnly(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        try f.issue("only", issuer: "inter", names: ["only.example"])
        var configuration = TLSConfiguration()
        configuration.serverNameCredentials = [TLSServerNameCredentials(
            serverNames: ["only.example"],
            credentials: [.certificateChain(.pem(try f.read("only.pem") + f.read("inter.pem")), privateKey: .file(f.path("only.key")))])]
        let server = try backend.type.makeContext(configuration)
        let link = Self.expectHandshake(try MemoryLink(client: Self.client(backend, host: "only.example"), server: server), "SNI only")
        #expect(link.client.peerCertificateInfo?.dnsNames == ["only.example"])
        // No identity at all is refused before anything is sent, on either role's check.
        let empty = try backend.type.makeContext(TLSConfiguration()).makeConnection()
        try empty.setTransport(.memory(TLSMemoryPair()))
        #expect(empty.step { $0.accept() } == Step(-1, .ssl))
        #expect(empty.lastError?.code == .invalidConfiguration)
    }

    @Test("RSA and ECDSA identities both offered: a client that accepts only RSA signatures gets the RSA one",
          arguments: allBackends)
    func rsaAndECDSA(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        try f.issue("rsa", issuer: "inter", names: ["localhost"], key: "rsa:2048")
        let rsaChain = try f.read("rsa.pem") + f.read("inter.pem")
        let server = try Self.server(backend) {
            $0.additionalCredentials = [.certificateChain(.pem(rsaChain), privateKey: .file(f.path("rsa.key")))]
        }
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        for (sigalgs, keyText) in [("rsa_pss_rsae_sha256", "RSA"), ("ecdsa_secp256r1_sha256", "EC")] {
            let accepted = Background { () -> Bool in
                let socket = try listener.accept(context: server, timeout: .seconds(20))
                try socket.shutdown()
                return true
            }
            let client = try Peer(try tool("openssl"), [
                "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost",
                "-CAfile", f.path("root.pem"), "-verify_return_error", "-sigalgs", sigalgs, "-showcerts",
            ])
            client.closeInput()
            #expect(client.wait(timeout: 20) == 0, "\(sigalgs): \(client.errorOutput)")
            #expect(try accepted.join())
            #expect(client.output.contains("Server public key is \(keyText == "RSA" ? "2048" : "256") bit"), "\(sigalgs): \(client.output.suffix(800))")
        }
    }

    @Test("public-key pinning: in addition to the chain, and instead of it", arguments: allBackends)
    func pinning(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        let goodPin = try backend.type.certificateInfo(der: firstDER(ofPEM: try f.read("good.pem"))).spkiSHA256
        let otherPin = [UInt8](repeating: 7, count: 32)
        let server = try Self.server(backend)

        let pinned = Self.expectHandshake(try MemoryLink(client: Self.client(backend) { $0.pinnedPublicKeys = [otherPin, goodPin] }, server: server), "pinned")
        #expect(pinned.client.peerVerification == .verified)

        let wrong = try MemoryLink(client: Self.client(backend) { $0.pinnedPublicKeys = [otherPin] }, server: server)
        let (clientSteps, serverSteps) = wrong.handshake()
        #expect(clientSteps.last == Step(-1, .ssl))
        #expect(wrong.client.lastError?.verificationFailure == .pinMismatch)
        #expect(serverSteps.last == Step(-1, .ssl))
        #expect(wrong.server.lastError?.alert == .badCertificate)

        // Instead of the chain: a self-signed certificate nobody trusts, known by its key.
        let selfPin = try backend.type.certificateInfo(der: firstDER(ofPEM: try f.read("selfsigned.pem"))).spkiSHA256
        let selfServer = try backend.type.makeContext(.makeServerConfiguration(
            certificateChain: .file(f.path("selfsigned.pem")), privateKey: .file(f.path("selfsigned.key"))))
        func pinOnlyClient(_ pins: [[UInt8]]) throws -> TLSContext {
            try Self.client(backend) {
                $0.trustRoots = .system
                $0.pinnedPublicKeys = pins
                $0.pinningMode = .insteadOfChainVerification
            }
        }
        let known = Self.expectHandshake(try MemoryLink(client: pinOnlyClient([selfPin]), server: selfServer), "pin only")
        #expect(known.client.peerVerification == .pinnedPublicKey)
        let unknown = try MemoryLink(client: pinOnlyClient([otherPin]), server: selfServer)
        #expect(unknown.handshake().client.last == Step(-1, .ssl))
        #expect(unknown.client.lastError?.verificationFailure == .pinMismatch)
    }

    @Test("trust sources: CA file, hashed CA directory, in-memory PEM and DER", arguments: allBackends)
    func trustSources(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        let directory = f.directory.appendingPathComponent("cadir-\(backend.name)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: f.path("root.pem"), toPath: directory.appendingPathComponent("root.pem").path)
        try f.openssl(["rehash", directory.path])
        let rootDER = firstDER(ofPEM: try f.read("root.pem"))
        let server = try Self.server(backend)
        let sources: [(String, TLSTrustRoots)] = [
            ("CA file", .caFile(f.path("root.pem"))),
            ("CA directory", .caDirectory(directory.path)),
            ("in-memory PEM", .certificates([.pem(try f.read("root.pem"))])),
            ("in-memory DER", .certificates([.bytes(rootDER)])),
        ]
        for (name, roots) in sources {
            Self.expectHandshake(try MemoryLink(client: Self.client(backend) { $0.trustRoots = roots }, server: server), name)
        }
    }

    @Test("the peer's certificate, parsed the same way on every backend", arguments: allBackends)
    func certificateInfo(backend: Backend) throws {
        let f = try Self.factory.get().copy()
        defer { f.remove() }
        let info = try backend.type.certificateInfo(der: firstDER(ofPEM: try f.read("good.pem")))
        #expect(info.subject == "CN=localhost")
        #expect(info.issuer == "CN=TLSKit matrix intermediate")
        #expect(info.commonName == "localhost")
        #expect(info.dnsNames == ["localhost"])
        #expect(info.ipAddresses == ["127.0.0.1", "::1"])
        #expect(info.notValidAfter - info.notValidBefore == 3 * 86_400)
        // Each value equal to what `openssl x509` computes from the same file (an empty or
        // truncated value of ours must not pass as a substring of theirs).
        func value(_ line: String) -> String {
            String(line.split(separator: "=", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let fingerprint = try f.openssl(["x509", "-in", f.path("good.pem"), "-noout", "-fingerprint", "-sha256"])
        #expect(info.sha256FingerprintText.count == 95)
        #expect(info.sha256FingerprintText == value(fingerprint), "\(fingerprint)")
        let serial = try f.openssl(["x509", "-in", f.path("good.pem"), "-noout", "-serial"])
        func significant(_ hex: String) -> String { String(hex.lowercased().drop { $0 == "0" }) }
        #expect(!info.serialNumber.isEmpty)
        #expect(significant(info.serialNumber) == significant(value(serial)), "\(serial) vs \(info.serialNumber)")
        // RFC 7469 pin: SHA-256 of the whole SubjectPublicKeyInfo DER.
        let publicKey = try f.openssl(["x509", "-in", f.path("good.pem"), "-noout", "-pubkey"])
        try f.openssl(["pkey", "-pubin", "-outform", "DER", "-out", f.path("good.spki")], input: publicKey)
        let spkiDigest = try f.openssl(["dgst", "-sha256", "-r", f.path("good.spki")])
        #expect(info.spkiSHA256.map { String(format: "%02x", $0) }.joined() == String(spkiDigest.split(separator: " ")[0]),
                "\(spkiDigest)")
        let error = try #require(throws: TLSError.self) { try backend.type.certificateInfo(der: [1, 2, 3]) }
        #expect(error.code == .badCertificate)
    }
}
