import Foundation
import Testing
import TLSKit

/// TLSServerIdentitySelector: the server's identity chosen per ClientHello, at once or
/// later, on every backend.
@Suite("Server identity selection", .timeLimit(.minutes(5)), .sharesProcess)
struct SelectionTests {
    /// A CA and leaves: "default" (localhost), "alpha" and "beta" (their own names), "rsa"
    /// (localhost, RSA-2048), and "stray" (beta's name, with alpha's key: unusable).
    static let factory = Result { () throws -> CertificateFactory in
        let f = try CertificateFactory()
        try f.makeCA("ca")
        try f.issue("default", issuer: "ca", commonName: "default", names: ["localhost", "alpha.test"])
        try f.issue("alpha", issuer: "ca", commonName: "alpha", names: ["alpha.test", "localhost"])
        try f.issue("beta", issuer: "ca", commonName: "beta", names: ["beta.test", "localhost"])
        try f.issue("rsa", issuer: "ca", commonName: "rsa", names: ["localhost"], key: "rsa:2048")
        return f
    }

    static func credential(_ name: String, key: String? = nil) throws -> TLSCredential {
        let f = try factory.get()
        return .certificateChain(.file(f.path("\(name).pem")), privateKey: .file(f.path("\(key ?? name).key")))
    }

    static func server(_ backend: Backend, version: TLSVersion = .tls13, identity: Bool = true,
                       _ selector: TLSServerIdentitySelector) throws -> TLSContext {
        let f = try factory.get()
        var configuration = identity
            ? TLSConfiguration.makeServerConfiguration(certificateChain: .file(f.path("default.pem")),
                                                       privateKey: .file(f.path("default.key")))
            : TLSConfiguration()
        configuration.maximumTLSVersion = version
        configuration.applicationProtocols = ["h2", "http/1.1"]
        configuration.serverIdentitySelector = selector
        return try backend.type.makeContext(configuration)
    }

    static func client(_ backend: Backend, name: String = "localhost", alpn: [String] = [],
                       version: TLSVersion = .tls13) throws -> TLSContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .caFile(try factory.get().path("ca.pem"))
        configuration.serverName = name
        configuration.applicationProtocols = alpn
        configuration.maximumTLSVersion = version
        return try backend.type.makeContext(configuration)
    }

    /// The alert of an unprotected alert record at the start of `bytes`.
    static func plaintextAlert(_ bytes: [UInt8]) -> TLSAlert? {
        bytes.count >= 7 && bytes[0] == 21 && bytes[3] == 0 && bytes[4] == 2 ? TLSAlert(bytes[6]) : nil
    }

    /// The ClientHellos a selector saw.
    final class Seen: Sendable {
        private let list = Locked<[TLSClientHello]>([])
        var all: [TLSClientHello] { list.withLock { $0 } }
        func record(_ hello: TLSClientHello) { list.withLock { $0.append(hello) } }
    }

    /// By name, then by ALPN: beta.test → beta; alpha.test offering h2 → alpha; else the
    /// configuration's identity.
    static func byNameAndALPN(_ seen: Seen) -> TLSServerIdentitySelector {
        .immediate { hello in
            seen.record(hello)
            if hello.serverName == "beta.test" { return .credentials([try credential("beta")]) }
            if hello.serverName == "alpha.test" && hello.applicationProtocols.contains("h2") {
                return .credentials([try credential("alpha")])
            }
            return .defaultIdentity
        }
    }

    @Test("selection by server name and by ALPN, each version; what the selector sees of the ClientHello",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func byNameAndALPN(backend: Backend, version: TLSVersion) throws {
        let seen = Seen()
        let server = try Self.server(backend, version: version, Self.byNameAndALPN(seen))
        for (name, alpn, expected) in [("beta.test", [String](), "beta"), ("alpha.test", ["h2"], "alpha"),
                                       ("alpha.test", ["http/1.1"], "default"), ("localhost", ["h2"], "default")] {
            let link = try MemoryLink(client: Self.client(backend, name: name, alpn: alpn, version: version), server: server)
            #expect(link.handshake().client.last == Step(1, .none), "\(name) \(alpn)")
            #expect(link.client.peerCertificateInfo?.commonName == expected, "\(name) \(alpn)")
            #expect(link.server.negotiatedVersion == version)
        }
        let hellos = seen.all
        #expect(hellos.count == 4)
        #expect(hellos.map(\.serverName) == ["beta.test", "alpha.test", "alpha.test", "localhost"])
        #expect(hellos.map(\.applicationProtocols) == [[], ["h2"], ["http/1.1"], ["h2"]])
        for hello in hellos {
            #expect(hello.supportedVersions.contains(version), "\(hello)")
            #expect(hello.signatureSchemes.contains(.ecdsaSecp256r1SHA256), "\(hello)")
            #expect(hello.acceptsECDSA)
            #expect(!hello.namedCipherSuites.isEmpty && !hello.namedGroups.isEmpty, "\(hello)")
        }
    }

    @Test("an answer given later, from another thread: wantClientHello until then, the wake-up once, then the handshake",
          arguments: allBackends)
    func asynchronousAnswer(backend: Backend) throws {
        let pending = Locked<TLSServerIdentityCompletion?>(nil)
        let server = try Self.server(backend, TLSServerIdentitySelector { hello, completion in
            #expect(hello.serverName == "beta.test")
            pending.withLock { $0 = completion }
        })
        let link = try MemoryLink(client: Self.client(backend, name: "beta.test"), server: server)
        let wakeUps = Locked(0)
        link.server.clientHelloWakeUp = { wakeUps.withLock { $0 += 1 } }
        #expect(link.client.step { $0.doHandshake() } == Step(-1, .wantRead))
        link.exchange()
        #expect(link.server.step { $0.doHandshake() } == Step(-1, .wantClientHello))
        #expect(link.server.isClientHelloPending)
        #expect(link.server.step { $0.doHandshake() } == Step(-1, .wantClientHello), "asking again changes nothing")
        #expect(link.exchange() == 0, "the server sends nothing while it waits")
        #expect(!link.server.waitForClientHello(timeout: .milliseconds(10)))

        let completion = try #require(pending.withLock { $0 })
        let answered = Background { completion.complete(.credentials([try Self.credential("beta")])) }
        #expect(try answered.join())
        #expect(!completion.complete(.defaultIdentity), "a second answer is ignored")
        #expect(link.server.waitForClientHello(timeout: .seconds(10)))
        #expect(wakeUps.withLock { $0 } == 1)
        #expect(!link.server.isClientHelloPending)
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(link.client.peerCertificateInfo?.commonName == "beta")
        #expect(link.server.step { $0.doHandshake() } == Step(1, .none))
    }

    @Test("refusal with a named alert, a selector that throws, an identity that cannot be loaded, the default when there is none",
          arguments: allBackends, [TLSVersion.tls13, .tls12])
    func failures(backend: Backend, version: TLSVersion) throws {
        struct LookupFailed: Error, CustomStringConvertible { var description: String { "the store is down" } }
        let cases: [(String, TLSServerIdentitySelector, Bool, String, TLSAlert)] = [
            ("refusal", .immediate { _ in .refuse(.unrecognizedName) }, true,
             "the server identity selector refused the handshake", .unrecognizedName),
            ("throws", .immediate { _ in throw LookupFailed() }, true,
             "the server identity selector failed: the store is down", .internalError),
            ("fails later", TLSServerIdentitySelector { _, completion in
                let done = Background { completion.fail(LookupFailed()) }
                _ = try done.join()
            }, true, "the server identity selector failed: the store is down", .internalError),
            ("unusable", .immediate { _ in .credentials([try Self.credential("beta", key: "alpha")]) }, true,
             "the identity the server identity selector chose cannot be used: ", .internalError),
            ("no default", .immediate { _ in .defaultIdentity }, false,
             "the server identity selector chose the default identity, and the configuration has none", .internalError),
        ]
        for (name, selector, identity, message, alert) in cases {
            let server = try Self.server(backend, version: version, identity: identity, selector)
            let link = try MemoryLink(client: Self.client(backend, version: version), server: server)
            let (clientSteps, serverSteps) = link.handshake()
            #expect(serverSteps.last == Step(-1, .ssl), "\(name)")
            let error = try #require(link.server.lastError, "\(name)")
            #expect(error.code == .handshakeRefused, "\(name): \(error)")
            #expect(error.message.hasPrefix(message), "\(name): \(error)")
            #expect(error.alert == alert, "\(name): \(error)")
            #expect(clientSteps.last == Step(-1, .ssl), "\(name)")
            let received = try #require(link.client.lastError, "\(name)")
            #expect(received.code == .alertReceived, "\(name): \(received)")
            #expect(received.alert == alert, "\(name): \(received)")
            if name == "unusable" { #expect(error.message.contains("cannot be used: keyCertificateMismatch: "), "\(error)") }
        }
    }

    @Test("a ClientHello cut into one-byte deliveries and five records is judged once whole; garbage fails before the selector",
          arguments: allBackends)
    func fragmentsAndGarbage(backend: Backend) throws {
        let seen = Seen()
        let server = try Self.server(backend, Self.byNameAndALPN(seen))
        let link = try MemoryLink(client: Self.client(backend, name: "beta.test"), server: server)
        #expect(link.client.step { $0.doHandshake() } == Step(-1, .wantRead))
        let hello = link.clientWire.takeOutgoing()
        // The record's body split into five records of its own (legal: RFC 8446 §5.1).
        let body = Array(hello[5...])
        let size = body.count / 5 + 1
        var records: [UInt8] = []
        for start in stride(from: 0, to: body.count, by: size) {
            let piece = body[start..<min(start + size, body.count)]
            records += [22, 3, 1, UInt8(piece.count >> 8), UInt8(piece.count & 0xff)] + piece
        }
        for byte in records.dropLast() {
            link.serverWire.deliverIncoming([byte])
            #expect(link.server.step { $0.doHandshake() } == Step(-1, .wantRead))
        }
        #expect(seen.all.isEmpty)
        link.serverWire.deliverIncoming([records.last!])
        #expect(link.handshake().client.last == Step(1, .none))
        #expect(link.client.peerCertificateInfo?.commonName == "beta")
        #expect(seen.all.map(\.serverName) == ["beta.test"])

        for (garbage, alert) in [([UInt8](repeating: 0x41, count: 64), TLSAlert.unexpectedMessage),
                                 ([22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3], .decodeError),
                                 ([23, 3, 3, 0, 2, 0, 0], .unexpectedMessage)] {
            let bad = try MemoryLink(client: Self.client(backend), server: server)
            bad.serverWire.deliverIncoming(garbage)
            #expect(bad.server.step { $0.doHandshake() } == Step(-1, .ssl), "\(garbage)")
            #expect(bad.server.lastError?.code == .protocolFailure, "\(String(describing: bad.server.lastError))")
            #expect(bad.server.lastError?.alert == alert, "\(String(describing: bad.server.lastError))")
            #expect(Self.plaintextAlert(bad.serverWire.takeOutgoing()) == alert)
        }
        #expect(seen.all.count == 1, "the selector never saw the garbage")
    }

    @Test("openssl s_client: an RSA-only client (-sigalgs) gets the RSA identity, the others the ECDSA one; TLSSocket waits for a late answer",
          arguments: allBackends)
    func bySignatureAlgorithms(backend: Backend) throws {
        let f = try Self.factory.get()
        let server = try Self.server(backend, TLSServerIdentitySelector { hello, completion in
            // Answered later, from another thread: TLSSocket's accept sleeps until then.
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
                do {
                    completion.complete(hello.acceptsECDSA ? .defaultIdentity : .credentials([try Self.credential("rsa")]))
                } catch {
                    completion.fail(error)   // the handshake then fails, and the test with it
                }
            }
        })
        let listener = try TLSListener(host: "127.0.0.1", port: 0)
        for (sigalgs, bits) in [("rsa_pss_rsae_sha256:rsa_pkcs1_sha256", "2048"), ("ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256", "256")] {
            let accepted = Background { () -> String? in
                let socket = try listener.accept(context: server, timeout: .seconds(20))
                defer { socket.close() }
                try socket.shutdown()
                return socket.connection.negotiatedVersion?.description
            }
            let client = try Peer(try tool("openssl"), [
                "s_client", "-connect", "127.0.0.1:\(listener.port)", "-servername", "localhost",
                "-CAfile", f.path("ca.pem"), "-verify_return_error", "-sigalgs", sigalgs,
            ])
            client.closeInput()
            #expect(client.wait(timeout: 20) == 0, "\(sigalgs): \(client.errorOutput)")
            #expect(try accepted.join() == "TLSv1.3")
            #expect(client.output.contains("Server public key is \(bits) bit"), "\(sigalgs): \(client.output.suffix(800))")
        }
    }
}
