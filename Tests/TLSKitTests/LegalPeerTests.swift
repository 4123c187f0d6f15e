import Foundation
import Testing
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore

/// Peers that are unusual but legal: handshake messages fragmented over many records,
/// large ClientHellos, TLS 1.3-only clients that send no `renegotiation_info`. Each is
/// accepted by `openssl s_server` and `gnutls-serv`, so by every TLSKit backend; and the
/// one illegal neighbour of each (what the reference servers refuse) is refused the same
/// way on every backend.
extension HostilePeerTests {
    /// `flight`'s handshake bytes again, in records of at most `size` bytes (the record
    /// headers of the original kept: type and legacy version).
    static func refragment(_ flight: [UInt8], recordSize size: Int) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index + 5 <= flight.count {
            let type = flight[index], major = flight[index + 1], minor = flight[index + 2]
            let length = Int(flight[index + 3]) << 8 | Int(flight[index + 4])
            let body = flight[(index + 5)..<min(flight.count, index + 5 + length)]
            index += 5 + length
            guard type == 22 else {
                out += flight[(index - 5 - length)..<index]
                continue
            }
            var start = body.startIndex
            while start < body.endIndex {
                let end = min(start + size, body.endIndex)
                out += [type, major, minor, UInt8((end - start) >> 8), UInt8((end - start) & 0xFF)] + body[start..<end]
                start = end
            }
        }
        return out
    }

    /// Moves `from`'s output to `to` re-fragmented into `size`-byte records, all at once.
    static func deliverFragmented(_ from: TLSMemoryPair, _ to: TLSMemoryPair, recordSize size: Int) -> Int {
        let bytes = refragment(from.takeOutgoing(), recordSize: size)
        to.deliverIncoming(bytes)
        return bytes.count
    }

    @Test("a ClientHello in 1-byte records, delivered at once: the server answers, the handshake completes",
          arguments: cases.filter { $0.role == .server })
    func clientHelloInOneByteRecords(c: Case) throws {
        let link = try Self.link(c)
        #expect(Self.handshake(link.client) == Step(-1, .wantRead))
        let delivered = Self.deliverFragmented(link.clientWire, link.serverWire, recordSize: 1)
        #expect(delivered > 100 * 6)
        let step = Self.handshake(link.server)
        #expect(step == Step(-1, .wantRead), "\(String(describing: link.server.lastError))")
        let steps = link.handshake()
        #expect(steps.client.last == Step(1, .none), "\(String(describing: link.client.lastError))")
        #expect(steps.server.last == Step(1, .none), "\(String(describing: link.server.lastError))")
        #expect(link.server.negotiatedVersion == c.version)
    }

    /// Where the extension list (its 2-byte length) starts in a ClientHello body: after
    /// version, random, session id, cipher suites and compression methods.
    static func extensionsOffset(clientHello hello: [UInt8]) -> Int {
        var index = 2 + 32
        index += 1 + Int(hello[index])                                  // session id
        index += 2 + (Int(hello[index]) << 8 | Int(hello[index + 1]))   // cipher suites
        index += 1 + Int(hello[index])                                  // compression methods
        return index
    }

    /// The ClientHello in `flight` (one handshake record) with one more extension at the
    /// end of its list: an unknown (GREASE, RFC 8701) type carrying `size` bytes, which a
    /// server must ignore.
    static func withExtraExtension(_ flight: [UInt8], size: Int) throws -> [UInt8] {
        try #require(flight.count > 9 && flight[0] == 22 && flight[5] == 1)
        var hello = Array(flight[9...])  // the ClientHello body
        let index = extensionsOffset(clientHello: hello)
        let extensionsLength = Int(hello[index]) << 8 | Int(hello[index + 1])
        try #require(index + 2 + extensionsLength == hello.count)
        let added = [0x3A, 0x3A, UInt8(size >> 8), UInt8(size & 0xFF)] + [UInt8](repeating: 0x5A, count: size)
        let newLength = extensionsLength + added.count
        hello[index] = UInt8(newLength >> 8)
        hello[index + 1] = UInt8(newLength & 0xFF)
        hello += added
        let message = [1, UInt8(hello.count >> 16), UInt8((hello.count >> 8) & 0xFF), UInt8(hello.count & 0xFF)] + hello
        return [22, flight[1], flight[2], UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
    }

    @Test("a ClientHello carrying a 4 KiB extension, in 20-byte records: the server answers with its ServerHello",
          arguments: cases.filter { $0.role == .server })
    func largeClientHelloIn20ByteRecords(c: Case) throws {
        let link = try Self.link(c)
        #expect(Self.handshake(link.client) == Step(-1, .wantRead))
        let hello = try Self.withExtraExtension(link.clientWire.takeOutgoing(), size: 4096)
        let fragmented = Self.refragment(hello, recordSize: 20)
        #expect(Self.recordTypes(fragmented).count == (hello.count - 5 + 19) / 20)
        link.serverWire.deliverIncoming(fragmented)
        #expect(Self.handshake(link.server) == Step(-1, .wantRead), "\(String(describing: link.server.lastError))")
        let answer = link.serverWire.takeOutgoing()
        // A handshake record whose first message is a ServerHello (type 2), not an alert.
        #expect(Array(answer.prefix(6)) == [22, 3, 3] + Array(answer[3..<5]) + [2], "\(answer.prefix(16))")
    }

    @Test("TLS 1.3: a zero-length application_data record with padding, in place of the client's Finished: unexpected_message",
          arguments: allBackends, [1, 1000, 16_384, 16_385])
    func paddedApplicationDataBeforeFinished(backend: Backend, padding: Int) throws {
        let serverLines = Locked<[String]>([])
        let logger = TLSKeyLogger { line in serverLines.withLock { $0.append(line) } }
        let link = try MemoryLink(Fixture(backend),
                                  client: { $0.minimumTLSVersion = .tls13; $0.cipherSuites = ["TLS_AES_128_GCM_SHA256"] },
                                  server: { $0.keyLogger = logger })
        #expect(Self.handshake(link.client) == Step(-1, .wantRead))
        link.exchange()
        #expect(Self.handshake(link.server) == Step(-1, .wantRead))
        link.exchange()
        #expect(Self.handshake(link.client) == Step(1, .none))
        _ = link.clientWire.takeOutgoing()  // its Finished: replaced
        let secret = try #require(serverLines.withLock { $0 }.first { $0.hasPrefix("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") }?
            .split(separator: " ")[2])
        // TLSInnerPlaintext: no content, type 23, `padding` zeros; 2^14 + 1 bytes at most
        // (RFC 8446 §5.4), so 16_384 is the largest legal padding: a 16_401-byte record,
        // within the 2^14 + 256 ciphertext limit (§5.2).
        let record = try Self.encryptRecord(tls13: true, secret: String(secret), client: true, type: 23, plaintext: [],
                                            padding: padding)
        #expect(record.count == 5 + 1 + padding + 16)
        link.serverWire.deliverIncoming(record)
        let step = Self.handshake(link.server)
        #expect(step == Step(-1, .ssl))
        #expect(link.server.lastError?.code == .protocolFailure, "\(String(describing: link.server.lastError))")
        // Over 2^14 + 1 two rules are broken at once: libssl names the content type
        // (unexpected_message), GnuTLS the size (record_overflow). Docs/backends.md.
        let expected: TLSAlert = padding > 16_384 && backend.name == "GnuTLS" ? .recordOverflow : .unexpectedMessage
        #expect(link.server.lastError?.alert == expected, "\(String(describing: link.server.lastError))")
        // The alert, protected under the server's handshake keys: one 19-byte record.
        #expect(Array(link.serverWire.takeOutgoing().prefix(5)) == [23, 3, 3, 0, 19])
    }
}

extension HostilePeerTests {
    // MARK: - Records that say nothing: bounded, the same verdict on every backend

    @Test("a client: warning alerts before the ServerHello (unrecognized_name, as TLS 1.2 servers send) are skipped, four in a row at most",
          arguments: cases.filter { $0.role == .client })
    func warningsBeforeServerHello(c: Case) throws {
        for count in [1, HostilePeerTests.maxWarnings] {
            let link = try Self.link(c)
            #expect(Self.handshake(link.client) == Step(-1, .wantRead))
            link.exchange()  // the ClientHello reaches the server
            let warnings = Array([[UInt8]](repeating: TLSWire.alertRecord(.unrecognizedName, fatal: false), count: count).joined())
            link.clientWire.deliverIncoming(warnings)
            #expect(Self.handshake(link.client) == Step(-1, .wantRead), "\(count): \(String(describing: link.client.lastError))")
            #expect(link.clientWire.takeOutgoing().isEmpty, "\(count) warnings: nothing is sent again")
            let steps = link.handshake()
            #expect(steps.client.last == Step(1, .none), "\(String(describing: link.client.lastError))")
            #expect(steps.server.last == Step(1, .none), "\(String(describing: link.server.lastError))")
        }
        let link = try Self.prepare(c, at: .start)
        let flood = Array([[UInt8]](repeating: TLSWire.alertRecord(.userCanceled, fatal: false),
                                    count: HostilePeerTests.maxWarnings + 1).joined())
        let step = Self.deliver(flood, to: link.client, link.clientWire)
        Self.expectFatal(step, link, c, code: .protocolFailure, alert: .unexpectedMessage)
    }

    static var maxWarnings: Int { TLSWireReader.maxWarningsInARow }

    @Test("a client: a no_renegotiation warning during the first handshake is handshake_failure",
          arguments: cases.filter { $0.role == .client })
    func noRenegotiationDuringHandshake(c: Case) throws {
        let link = try Self.prepare(c, at: .start)
        let step = Self.deliver(TLSWire.alertRecord(.noRenegotiation, fatal: false), to: link.client, link.clientWire)
        Self.expectFatal(step, link, c, code: .protocolFailure, alert: .handshakeFailure)
    }

    @Test("an empty handshake or alert record (never legal) is unexpected_message at once, in either role",
          arguments: cases)
    func emptyRecords(c: Case) throws {
        for type: UInt8 in [22, 21] {
            let link = try Self.prepare(c, at: .start)
            let (victim, wire, _, _) = Self.sides(link, c.role)
            let step = Self.deliver(Self.record(type, 0x0303, []), to: victim, wire)
            Self.expectFatal(step, link, c, code: .protocolFailure, alert: .unexpectedMessage)
        }
    }
}
