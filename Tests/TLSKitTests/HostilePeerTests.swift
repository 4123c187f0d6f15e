import Testing
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore

/// A peer that sends hand-made bytes: the helpers of the legal-peer suite (LegalPeerTests)
/// and of HostNameRuleTests, for both roles and TLS 1.2 and 1.3 (Docs/backends.md, "Hostile peers").
///
/// Each case puts a real handshake in the position the case names (the real peer's
/// bytes are cut there), delivers the hostile bytes to the connection under test, and
/// checks its result, `error(for:)`, `TLSError.code` and the alert, then reads what it
/// wrote back: an unprotected alert record is parsed; a protected one is given to the
/// real peer, which must report that alert. Nothing waits for a time-out.
@Suite("Hostile peers", .timeLimit(.minutes(5)), .sharesProcess)
struct HostilePeerTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let backend: Backend
        let role: TLSRole
        let version: TLSVersion
        var testDescription: String { "\(backend.name) \(role == .client ? "client" : "server") \(version)" }
    }

    static let cases: [Case] = allBackends.flatMap { backend in
        [TLSRole.client, .server].flatMap { role in
            [TLSVersion.tls12, .tls13].map { Case(backend: backend, role: role, version: $0) }
        }
    }

    /// A link whose both ends speak exactly `version`.
    static func link(_ c: Case) throws -> MemoryLink {
        try MemoryLink(Fixture(c.backend),
                       client: { $0.minimumTLSVersion = c.version; $0.maximumTLSVersion = c.version },
                       server: { $0.minimumTLSVersion = c.version; $0.maximumTLSVersion = c.version })
    }

    /// The connection under test, its wire, and the real peer with its wire.
    static func sides(_ link: MemoryLink, _ role: TLSRole)
        -> (victim: TLSConnection, wire: TLSMemoryPair, peer: TLSConnection, peerWire: TLSMemoryPair) {
        role == .client ? (link.client, link.clientWire, link.server, link.serverWire)
                        : (link.server, link.serverWire, link.client, link.clientWire)
    }

    /// Runs the victim's handshake call once.
    static func handshake(_ connection: TLSConnection) -> Step { connection.step { $0.doHandshake() } }

    /// Brings the link to the point where the victim is about to read, and returns what
    /// the real peer sent so far (not delivered): nothing before the ClientHello; the
    /// ClientHello (victim server); the real ServerHello record (victim client).
    enum Point { case start, afterClientHello, afterServerHello, afterClientFinished }

    /// The content types of the records in `bytes`, in order.
    static func recordTypes(_ bytes: [UInt8]) -> [UInt8] {
        var types: [UInt8] = []
        var index = 0
        while index + 5 <= bytes.count {
            types.append(bytes[index])
            index += 5 + (Int(bytes[index + 3]) << 8 | Int(bytes[index + 4]))
        }
        return types
    }

    /// The first record of `bytes` (header and body).
    static func firstRecord(_ bytes: [UInt8]) -> [UInt8] {
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        return Array(bytes.prefix(5 + length))
    }

    /// Sets up the victim at `point`; the real peer's bytes up to that point are
    /// delivered. Returns the link.
    static func prepare(_ c: Case, at point: Point) throws -> MemoryLink {
        let link = try link(c)
        let (victim, wire, peer, _) = sides(link, c.role)
        switch (point, c.role) {
        case (.start, .server):
            break
        case (.start, .client):
            #expect(handshake(victim) == Step(-1, .wantRead))
            _ = wire.takeOutgoing()
        case (.afterClientHello, .server):
            #expect(handshake(peer) == Step(-1, .wantRead))
            link.exchange()
        case (.afterClientHello, .client):
            #expect(handshake(victim) == Step(-1, .wantRead))
            _ = wire.takeOutgoing()
        case (.afterServerHello, .client):
            #expect(handshake(victim) == Step(-1, .wantRead))
            link.exchange()
            #expect(handshake(peer) == Step(-1, .wantRead))
            let flight = link.serverWire.takeOutgoing()
            wire.deliverIncoming(firstRecord(flight))  // the ServerHello record alone
            _ = link.clientWire.takeOutgoing()
        case (.afterServerHello, .server):
            #expect(handshake(peer) == Step(-1, .wantRead))
            link.exchange()
            #expect(handshake(victim) == Step(-1, .wantRead))
            _ = wire.takeOutgoing()  // the client got (and ignores) the ServerHello
        case (.afterClientFinished, _):
            // The client's last flight (with its Finished) reaches the server.
            #expect(handshake(link.client) == Step(-1, .wantRead))
            link.exchange()
            #expect(handshake(link.server) == Step(-1, .wantRead))
            link.exchange()
            let step = handshake(link.client)
            #expect(step == Step(c.version == .tls13 ? 1 : -1, c.version == .tls13 ? .none : .wantRead))
            if c.role == .client {
                // The server reads the client's Finished; what it answers is dropped
                // (TLS 1.2: its ChangeCipherSpec and Finished, still to come).
                link.exchange()
                #expect(handshake(link.server) == Step(1, .none))
                _ = link.serverWire.takeOutgoing()
            } else {
                link.exchange()
            }
        }
        return link
    }

    /// Delivers `bytes` to the victim, calls it (handshake, or read once it is
    /// established), and returns the step.
    static func deliver(_ bytes: [UInt8], to victim: TLSConnection, _ wire: TLSMemoryPair) -> Step {
        wire.deliverIncoming(bytes)
        if victim.isHandshakeComplete { return victim.readStep().0 }
        var step = handshake(victim)
        if step == Step(1, .none) { step = victim.readStep().0 }
        return step
    }

    /// The victim failed with `code` and `alert`, at once, and its peer sees that alert:
    /// parsed from an unprotected alert record, or reported by the real peer.
    static func expectFatal(_ step: Step, _ link: MemoryLink, _ c: Case, code: TLSError.Code, alert: TLSAlert,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        let (victim, wire, peer, peerWire) = sides(link, c.role)
        #expect(step == Step(-1, .ssl), "\(String(describing: victim.lastError))", sourceLocation: sourceLocation)
        #expect(victim.error(for: step.result) == .ssl, sourceLocation: sourceLocation)
        #expect(victim.lastError?.code == code, "\(String(describing: victim.lastError))", sourceLocation: sourceLocation)
        #expect(victim.lastError?.alert == alert, "\(String(describing: victim.lastError))", sourceLocation: sourceLocation)
        #expect(victim.lastError?.backend == c.backend.id, sourceLocation: sourceLocation)
        let answer = wire.takeOutgoing()
        if let plain = TLSWire.plaintextAlert(answer) {
            #expect(plain.level == 2 && plain.alert == victim.lastError?.alert, "sent \(plain)", sourceLocation: sourceLocation)
        } else {
            // Protected (maybe after the rest of the victim's flight): the real peer
            // decrypts it.
            #expect(!answer.isEmpty, sourceLocation: sourceLocation)
            peerWire.deliverIncoming(answer)
            var seen = peer.isHandshakeComplete ? peer.readStep().0 : handshake(peer)
            if seen == Step(1, .none) { seen = peer.readStep().0 }
            #expect(seen == Step(-1, .ssl), sourceLocation: sourceLocation)
            #expect(peer.lastError?.code == .alertReceived, "\(String(describing: peer.lastError))", sourceLocation: sourceLocation)
            #expect(peer.lastError?.alert == victim.lastError?.alert, "\(String(describing: peer.lastError))",
                    sourceLocation: sourceLocation)
        }
        // Sticky: the same result again, the first error kept.
        let first = victim.lastError
        #expect(handshake(victim) == Step(-1, .ssl), sourceLocation: sourceLocation)
        #expect(identical(victim.lastError, first), sourceLocation: sourceLocation)
    }

    // The hostile-input cases written by rule (malformed records, huge lengths, truncated
    // records, split flights, plaintext alerts) are in TLSKitConformance
    // (HostileInputTests); these helpers serve the legal-peer and host-name suites.

    /// A record of `type` and `version` around `body`.
    static func record(_ type: UInt8, _ version: UInt16, _ body: [UInt8], length: Int? = nil) -> [UInt8] {
        let n = length ?? body.count
        return [type, UInt8(version >> 8), UInt8(version & 0xFF), UInt8(n >> 8), UInt8(n & 0xFF)] + body
    }
}

extension HostilePeerTests {
    /// One AES-128-GCM record, sequence 0, of `type` around `plaintext`: TLS 1.3 under
    /// the traffic secret `secret` (with `padding` zero bytes after the inner type);
    /// TLS 1.2 under the key block of `secret` (the master secret) and the two randoms,
    /// as the client (`client`) or the server writes it (Python's `cryptography`).
    static func encryptRecord(tls13: Bool, secret: String, randoms: (client: [UInt8], server: [UInt8]) = ([], []),
                              client: Bool, type: UInt8, plaintext: [UInt8], padding: Int = 0) throws -> [UInt8] {
        let script = """
            import sys, binascii, hmac, hashlib
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            tls13, secret, crandom, srandom, client, ctype, plain = sys.argv[1] == "1", binascii.unhexlify(sys.argv[2]), \\
                binascii.unhexlify(sys.argv[3]), binascii.unhexlify(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6]), \\
                binascii.unhexlify(sys.argv[7])
            padding = int(sys.argv[8])
            if tls13:
                def label(l, n):
                    full = b"tls13 " + l
                    info = n.to_bytes(2, "big") + bytes([len(full)]) + full + b"\\x00"
                    return HKDFExpand(hashes.SHA256(), n, info).derive(secret)
                key, iv = label(b"key", 16), label(b"iv", 12)
                inner = plain + bytes([ctype]) + bytes(padding)
                header = bytes([23, 3, 3, (len(inner) + 16) >> 8, (len(inner) + 16) & 0xFF])
                out = header + AESGCM(key).encrypt(iv, inner, header)
            else:
                def prf(label, seed, n):
                    out, a = b"", label + seed
                    while len(out) < n:
                        a = hmac.new(secret, a, hashlib.sha256).digest()
                        out += hmac.new(secret, a + label + seed, hashlib.sha256).digest()
                    return out[:n]
                block = prf(b"key expansion", srandom + crandom, 40)
                key, salt = (block[0:16], block[32:36]) if client else (block[16:32], block[36:40])
                explicit = bytes(8)
                aad = bytes(8) + bytes([ctype, 3, 3, len(plain) >> 8, len(plain) & 0xFF])
                body = explicit + AESGCM(key).encrypt(salt + explicit, plain, aad)
                out = bytes([ctype, 3, 3, len(body) >> 8, len(body) & 0xFF]) + body
            sys.stdout.write(binascii.hexlify(out).decode())
            """
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        let peer = try Peer(try tool("python3"), ["-c", script, tls13 ? "1" : "0", secret, hex(randoms.client),
                                                  hex(randoms.server), client ? "1" : "0", "\(type)", hex(plaintext),
                                                  "\(padding)"])
        peer.closeInput()
        guard peer.wait(timeout: 30) == 0 else {
            throw TLSError(.internalError, "encryption failed: \(peer.errorOutput)", backend: "tests")
        }
        let text = Array(peer.output.utf8)
        return stride(from: 0, to: text.count - 1, by: 2).map { UInt8(String(decoding: text[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
    }

    /// The 32-byte random of the hello message at the start of `flight`.
    static func helloRandom(_ flight: [UInt8]) -> [UInt8] { Array(flight[11..<43]) }
}
