import Testing
import TLSCore

/// A peer that sends hand-made bytes: the contract's answer, by rule, for both roles and
/// TLS 1.2 and 1.3 (Docs/contract.md, "protocol failure we detect"; DESIGN.md §1,
/// "Hostile input gets one answer").
///
/// Each case puts a real handshake in the position the case names (the real peer's
/// bytes are cut there), delivers the hostile bytes to the connection under test, and
/// checks its result, `error(for:)`, `TLSError.code`, the backend that reports it and the
/// alert, then reads what it wrote back: an unprotected alert record is parsed; a
/// protected one is given to the real peer, which must report that alert. Where the TLS
/// RFCs allow more than one answer the case accepts exactly that set, and says why.
/// Nothing waits for a time-out.
struct HostileInputTests {
    struct Case {
        let backend: Backend
        let role: TLSRole
        let version: TLSVersion
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

    /// Runs a handshake call once.
    static func handshake(_ connection: TLSConnection) -> Step { connection.step { $0.doHandshake() } }

    /// Where in the handshake the victim is about to read.
    enum Point { case start, afterClientHello, afterServerHello, afterClientFinished }

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
            wire.deliverIncoming(Wire.firstRecord(flight))  // the ServerHello record alone
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

    /// The victim failed with `code` and an alert from `alerts`, at once, and its peer
    /// sees that same alert: parsed from an unprotected alert record, or reported by the
    /// real peer.
    static func expectFatal(_ step: Step, _ link: MemoryLink, _ c: Case, code: TLSError.Code, alerts: Set<TLSAlert>,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        let (victim, wire, peer, peerWire) = sides(link, c.role)
        #expect(step == Step(-1, .ssl), "\(String(describing: victim.lastError))", sourceLocation: sourceLocation)
        #expect(victim.error(for: step.result) == .ssl, sourceLocation: sourceLocation)
        #expect(victim.lastError?.code == code, "\(String(describing: victim.lastError))", sourceLocation: sourceLocation)
        #expect(victim.lastError?.alert.map(alerts.contains) == true, "\(String(describing: victim.lastError)) not in \(alerts)",
                sourceLocation: sourceLocation)
        #expect(victim.lastError?.backend == c.backend.id, sourceLocation: sourceLocation)
        let answer = wire.takeOutgoing()
        if let plain = Wire.plaintextAlert(answer) {
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

    /// Each malformed first record and the one alert its RFC names (RFC 8446 §5 and §6.2,
    /// RFC 5246 §6.2.1 and §7.2.2): unknown content type, unexpected_message; a record
    /// version that is no TLS version, protocol_version; a length over 2^14 + 2048,
    /// record_overflow; an unknown handshake type, unexpected_message.
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

    func malformedRecord(c: Case) throws {
        for (name, bytes, alert) in Self.malformed {
            let link = try Self.prepare(c, at: .start)
            let (victim, wire, _, _) = Self.sides(link, c.role)
            let step = Self.deliver(bytes, to: victim, wire)
            Self.expectFatal(step, link, c, code: .protocolFailure, alerts: [alert])
            #expect(victim.lastError?.code == .protocolFailure, "\(name)")
        }
    }

    func hugeHandshakeLength(c: Case) throws {
        let link = try Self.prepare(c, at: .start)
        let (victim, wire, _, _) = Self.sides(link, c.role)
        // A ClientHello to a server, a ServerHello to a client, each declaring 16 MiB: a
        // field out of its range, illegal_parameter (TLSKit's one answer, DESIGN.md §1).
        let type: UInt8 = c.role == .server ? 1 : 2
        let step = Self.deliver(Self.record(22, 0x0303, [type, 0xFF, 0xFF, 0xFF] + Array(repeating: 3, count: 28)), to: victim, wire)
        Self.expectFatal(step, link, c, code: .protocolFailure, alerts: [.illegalParameter])
    }

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
        #expect(victim.lastError?.backend == c.backend.id)
        // The peer is gone: nothing is written to it.
        #expect(wire.takeOutgoing() == [])
    }

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

    static let closeNotify = Wire.alertRecord(.closeNotify, fatal: false)
    static let handshakeFailure = Wire.alertRecord(.handshakeFailure)

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
        #expect(step == Step(-1, .ssl), sourceLocation: sourceLocation)
        #expect(other.lastError?.code == .alertReceived, "\(String(describing: other.lastError))", sourceLocation: sourceLocation)
        #expect(other.lastError?.alert == .handshakeFailure, sourceLocation: sourceLocation)
        #expect(other.lastError?.backend == c.backend.id, sourceLocation: sourceLocation)
        // A received fatal alert is not answered (RFC 8446 §6.2, RFC 5246 §7.2.2: both
        // sides close at once): what the victim wrote, if anything, is its own flight,
        // never an alert record. One set of two answers: a server at the very start,
        // waiting for a ClientHello, may treat any other record as the inappropriate
        // message it is (RFC 8446 §6.2 unexpected_message) before reading the alert in it,
        // so there it may send nothing, or exactly one fatal unexpected_message.
        let answer = otherWire.takeOutgoing()
        if c.role == .server && point == .start && !answer.isEmpty {
            let alert = Wire.plaintextAlert(answer)
            #expect(answer.count == 7 && alert?.level == 2 && alert?.alert == .unexpectedMessage,
                    "answer to an alert as the first record: \(answer)", sourceLocation: sourceLocation)
        } else {
            #expect(!Wire.recordTypes(answer).contains(21), "an alert was answered: \(answer)", sourceLocation: sourceLocation)
        }
    }

    /// Where alerts must be protected: a plaintext one is refused. TLS 1.3: RFC 8446 §5
    /// ("an implementation which receives ... an unprotected record ... MUST terminate the
    /// connection with an unexpected_message alert"), exactly. TLS 1.2: the record is read
    /// as ciphertext that cannot be decrypted (RFC 5246 §6.2.3.3: bad_record_mac); two
    /// bytes cannot even hold an AEAD record's explicit nonce and tag, a length out of
    /// range (RFC 5246 §7.2.2: decode_error). libssl answers internal_error there
    /// (Docs/backends.md); the set admits it rather than name a backend, and the peer must
    /// still receive the alert the victim reports.
    static func expectRefused(_ c: Case, at point: Point, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let allowed: Set<TLSAlert> = c.version == .tls13 ? [.unexpectedMessage] : [.badRecordMAC, .decodeError, .internalError]
        for alert in [closeNotify, handshakeFailure] {
            let link = try prepare(c, at: point)
            let (victim, wire, _, _) = sides(link, c.role)
            let step = deliver(alert, to: victim, wire)
            expectFatal(step, link, c, code: .protocolFailure, alerts: allowed, sourceLocation: sourceLocation)
        }
    }

    func alertsAroundClientHello(c: Case) throws {
        try Self.expectAccepted(c, at: .start)
        try Self.expectAccepted(c, at: .afterClientHello)
    }

    func alertsAfterServerHello(c: Case) throws {
        if c.role == .client && c.version == .tls13 {
            try Self.expectRefused(c, at: .afterServerHello)
        } else {
            try Self.expectAccepted(c, at: .afterServerHello)
        }
    }

    func alertsAfterClientFinished(c: Case) throws {
        if c.role == .client && c.version == .tls12 {
            // The server has not sent its ChangeCipherSpec yet: still plaintext.
            try Self.expectAccepted(c, at: .afterClientFinished)
        } else {
            try Self.expectRefused(c, at: .afterClientFinished)
        }
    }

    /// Every case for both roles and both versions (TLS 1.3 only with `.tls13`), each
    /// requiring `requires`.
    static func expand(_ name: String, _ summary: String, requires: TLSCapabilities = [],
                       _ body: @escaping @Sendable (HostileInputTests, Case) throws -> Void) -> [ConformanceRule] {
        [TLSRole.client, .server].flatMap { role in
            [TLSVersion.tls12, .tls13].map { version in
                ConformanceRule("hostile.\(name)[\(role == .client ? "client" : "server"), TLS 1.\(version == .tls13 ? 3 : 2)]",
                                summary, requires: requires.union(version == .tls13 ? .tls13 : [])) { backend in
                    try body(HostileInputTests(), Case(backend: backend, role: role, version: version))
                }
            }
        }
    }

    /// This file's rules, in order.
    static let rules: [ConformanceRule] =
        expand("malformedRecord", "malformed first record: -1 .ssl protocolFailure at once, and the fatal alert") { try $0.malformedRecord(c: $1) }
        + expand("hugeHandshakeLength", "a handshake message declaring far more than any sane message: -1 .ssl, alert") { try $0.hugeHandshakeLength(c: $1) }
        + expand("truncatedThenEOF", "a truncated record then EOF: -1 .ssl unexpectedEOF, nothing more sent") { try $0.truncatedThenEOF(c: $1) }
        + expand("splitFlights", "every flight delivered one byte at a time (a split at every byte boundary): the handshake succeeds") { try $0.splitFlights(c: $1) }
        + expand("alertsAroundClientHello", "plaintext alerts before the ClientHello and right after it: the peer's word") { try $0.alertsAroundClientHello(c: $1) }
        + expand("alertsAfterServerHello", "plaintext alerts after the ServerHello: refused by a TLS 1.3 client; the peer's word otherwise") { try $0.alertsAfterServerHello(c: $1) }
        + expand("alertsAfterClientFinished", "plaintext alerts after the client's Finished: refused once the peer's records are protected") { try $0.alertsAfterClientFinished(c: $1) }
}
