import Testing
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore

/// A peer that sends hand-made bytes: the same result, error code and alert on every
/// backend, for both roles and TLS 1.2 and 1.3 (Docs/backends.md, "Hostile peers").
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

    // MARK: - Malformed records and messages, as the first bytes the victim reads

    /// A record of `type` and `version` around `body`.
    static func record(_ type: UInt8, _ version: UInt16, _ body: [UInt8], length: Int? = nil) -> [UInt8] {
        let n = length ?? body.count
        return [type, UInt8(version >> 8), UInt8(version & 0xFF), UInt8(n >> 8), UInt8(n & 0xFF)] + body
    }

    static let malformed: [(String, [UInt8], TLSAlert)] = [
        ("invalid content type", record(0x30, 0x0303, [1, 0, 0, 0, 0, 0, 0, 0]), .unexpectedMessage),
        ("random bytes, first byte 0x87", [0x87, 0x5A, 0x13, 0x81, 0x00] + (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37) },
         .unexpectedMessage),
        ("invalid record version", record(22, 0x0505, [1, 0, 0, 0]), .protocolVersion),
        ("record length over the limit", record(22, 0x0301, Array(repeating: 0, count: 16), length: 0x4801), .recordOverflow),
        ("junk handshake type", record(22, 0x0301, [0xEE, 0, 0, 28] + Array(repeating: 0, count: 28)), .unexpectedMessage),
        ("junk handshake type with a huge length", record(22, 0x0301, [0xEE, 0xFF, 0xFF, 0xFF] + Array(repeating: 0, count: 28)),
         .unexpectedMessage),
    ]

    @Test("malformed first record: -1 .ssl protocolFailure at once, and the fatal alert", arguments: cases)
    func malformedRecord(c: Case) throws {
        for (name, bytes, alert) in Self.malformed {
            let link = try Self.prepare(c, at: .start)
            let (victim, wire, _, _) = Self.sides(link, c.role)
            let step = Self.deliver(bytes, to: victim, wire)
            Self.expectFatal(step, link, c, code: .protocolFailure, alert: alert)
            #expect(victim.lastError?.code == .protocolFailure, "\(name)")
        }
    }

    @Test("a handshake message declaring far more than any sane message: -1 .ssl, alert", arguments: cases)
    func hugeHandshakeLength(c: Case) throws {
        let link = try Self.prepare(c, at: .start)
        let (victim, wire, _, _) = Self.sides(link, c.role)
        // A ClientHello to a server, a ServerHello to a client, each declaring 16 MiB.
        let type: UInt8 = c.role == .server ? 1 : 2
        let step = Self.deliver(Self.record(22, 0x0303, [type, 0xFF, 0xFF, 0xFF] + Array(repeating: 3, count: 28)), to: victim, wire)
        Self.expectFatal(step, link, c, code: .protocolFailure, alert: .illegalParameter)
    }

    @Test("a truncated record then EOF: -1 .ssl unexpectedEOF, nothing more sent", arguments: cases)
    func truncatedThenEOF(c: Case) throws {
        let link = try Self.prepare(c, at: .start)
        let (victim, wire, _, _) = Self.sides(link, c.role)
        wire.deliverIncoming(Self.record(22, 0x0301, [c.role == .server ? 1 : 2, 0, 0, 40] + Array(repeating: 0, count: 10), length: 44))
        #expect(Self.handshake(victim) == Step(-1, .wantRead))
        wire.closeIncoming()
        let step = Self.handshake(victim)
        #expect(step == Step(-1, .ssl))
        #expect(victim.error(for: step.result) == .ssl)
        #expect(victim.lastError?.code == .unexpectedEOF, "\(String(describing: victim.lastError))")
        // The peer is gone: nothing is written to it, on either backend.
        #expect(wire.takeOutgoing() == [])
    }

    @Test("every flight delivered one byte at a time (a split at every byte boundary): the handshake succeeds",
          arguments: cases)
    func splitFlights(c: Case) throws {
        let link = try Self.link(c)
        var done = (client: false, server: false)
        for _ in 0..<20 where !(done.client && done.server) {
            for (connection, from, to) in [(link.client, link.clientWire, link.serverWire),
                                           (link.server, link.serverWire, link.clientWire)] {
                let isClient = connection === link.client
                if !(isClient ? done.client : done.server) {
                    let step = Self.handshake(connection)
                    if step == Step(1, .none) { if isClient { done.client = true } else { done.server = true } }
                    #expect(step.result == 1 || step.code == .wantRead, "\(step) \(String(describing: connection.lastError))")
                }
                // Deliver this side's output to the other one byte at a time, calling
                // the other side after every byte.
                let bytes = from.takeOutgoing()
                let other = isClient ? link.server : link.client
                for byte in bytes {
                    to.deliverIncoming([byte])
                    if other.isHandshakeComplete { continue }
                    let step = Self.handshake(other)
                    #expect(step.result == 1 || step.code == .wantRead, "\(step) \(String(describing: other.lastError))")
                    if step.result == 1 { if isClient { done.server = true } else { done.client = true } }
                }
            }
        }
        #expect(link.client.isHandshakeComplete && link.server.isHandshakeComplete)
        #expect(link.client.negotiatedVersion == c.version)
        #expect(link.client.write([1, 2, 3]) == 3)
        link.exchange()
        #expect(link.server.readStep().1 == [1, 2, 3])
    }

    // MARK: - Plaintext alerts

    static let closeNotify = TLSWire.alertRecord(.closeNotify, fatal: false)
    static let handshakeFailure = TLSWire.alertRecord(.handshakeFailure)

    /// Where a plaintext alert is still the peer's word: close_notify is 0 .zeroReturn,
    /// a fatal alert -1 .ssl alertReceived.
    static func expectAccepted(_ c: Case, at point: Point, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let closing = try prepare(c, at: point)
        let (victim, wire, _, _) = sides(closing, c.role)
        #expect(deliver(closeNotify, to: victim, wire) == Step(0, .zeroReturn), "\(String(describing: victim.lastError))",
                sourceLocation: sourceLocation)
        #expect(handshake(victim) == Step(0, .zeroReturn), sourceLocation: sourceLocation)

        let failing = try prepare(c, at: point)
        let (other, otherWire, _, _) = sides(failing, c.role)
        _ = otherWire.takeOutgoing()
        otherWire.deliverIncoming(handshakeFailure)
        let step = handshake(other)
        // A received fatal alert is not answered (what the victim wrote, if anything,
        // is its own flight, which it had not sent yet: no alert record). Except by
        // libssl's server, when the alert is the very first record: it has already
        // written unexpected_message (Docs/backends.md).
        let libsslAnswers = c.backend.name == "OpenSSL" && c.role == .server && point == .start
        #expect(recordTypes(otherWire.takeOutgoing()).contains(21) == libsslAnswers, sourceLocation: sourceLocation)
        #expect(step == Step(-1, .ssl), sourceLocation: sourceLocation)
        #expect(other.lastError?.code == .alertReceived, "\(String(describing: other.lastError))", sourceLocation: sourceLocation)
        #expect(other.lastError?.alert == .handshakeFailure, sourceLocation: sourceLocation)
    }

    /// Where alerts must be protected: a plaintext one is unexpected_message (TLS 1.3),
    /// or bad_record_mac (TLS 1.2: it cannot be decrypted).
    static func expectRefused(_ c: Case, at point: Point, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // TLS 1.2: libssl refuses a record too short for its AEAD with internal_error.
        let expected: TLSAlert = c.version == .tls13 ? .unexpectedMessage : .badRecordMAC
        let libssl: TLSAlert? = c.version == .tls12 && c.backend.name == "OpenSSL" ? .internalError : nil
        for alert in [closeNotify, handshakeFailure] {
            let link = try prepare(c, at: point)
            let (victim, wire, _, _) = sides(link, c.role)
            let step = deliver(alert, to: victim, wire)
            expectFatal(step, link, c, code: .protocolFailure, alert: libssl ?? expected, sourceLocation: sourceLocation)
        }
    }

    @Test("plaintext alerts before the ClientHello and right after it: the peer's word", arguments: cases)
    func alertsAroundClientHello(c: Case) throws {
        try Self.expectAccepted(c, at: .start)
        try Self.expectAccepted(c, at: .afterClientHello)
    }

    @Test("plaintext alerts after the ServerHello: refused by a TLS 1.3 client; the peer's word otherwise",
          arguments: cases)
    func alertsAfterServerHello(c: Case) throws {
        if c.role == .client && c.version == .tls13 {
            try Self.expectRefused(c, at: .afterServerHello)
        } else {
            try Self.expectAccepted(c, at: .afterServerHello)
        }
    }

    @Test("plaintext alerts after the client's Finished: refused once the peer's records are protected",
          arguments: cases)
    func alertsAfterClientFinished(c: Case) throws {
        if c.role == .client && c.version == .tls12 {
            // The server has not sent its ChangeCipherSpec yet: still plaintext.
            try Self.expectAccepted(c, at: .afterClientFinished)
        } else {
            try Self.expectRefused(c, at: .afterClientFinished)
        }
    }
}
