import Testing
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore

/// TLSCore's wire reader over byte vectors: no backend involved.
@Suite("Wire reader", .timeLimit(.minutes(5)), .sharesProcess)
struct WireTests {
    static func header(_ bytes: [UInt8]) -> TLSWire.RecordHeader { TLSWire.recordHeader(bytes)! }

    @Test("record headers: content type 20-24, version 0x0300-0x0304, length within the limit")
    func recordHeaders() {
        #expect(TLSWire.recordHeader([22, 3, 1, 0]) == nil)
        #expect(Self.header([22, 3, 1, 0x01, 0x02]) == TLSWire.RecordHeader(type: 22, version: 0x0301, length: 258))
        for type: UInt8 in 20...24 { #expect(TLSWire.validate(Self.header([type, 3, 3, 0, 2])) == nil) }
        for type: UInt8 in [0, 19, 25, 0x47, 0x87, 0xFF] {
            #expect(TLSWire.validate(Self.header([type, 3, 3, 0, 2]))?.alert == .unexpectedMessage)
        }
        for version: [UInt8] in [[3, 0], [3, 1], [3, 3], [3, 4]] {
            #expect(TLSWire.validate(Self.header([22] + version + [0, 2])) == nil)
        }
        for version: [UInt8] in [[2, 0], [3, 5], [5, 5], [0xFE, 0xFD], [0x5A, 0x13]] {
            #expect(TLSWire.validate(Self.header([22] + version + [0, 2]))?.alert == .protocolVersion)
        }
        // 2^14 + 2048 is the largest record of any version; 2^14 the largest plaintext one.
        #expect(TLSWire.validate(Self.header([23, 3, 3, 0x48, 0x00])) == nil)
        #expect(TLSWire.validate(Self.header([23, 3, 3, 0x48, 0x01]))?.alert == .recordOverflow)
        #expect(TLSWire.validate(Self.header([22, 3, 3, 0x40, 0x00]), maxLength: TLSWire.maxPlaintextLength) == nil)
        #expect(TLSWire.validate(Self.header([22, 3, 3, 0x40, 0x01]), maxLength: TLSWire.maxPlaintextLength)?.alert == .recordOverflow)
        #expect(TLSWire.validate(Self.header([23, 3, 3, 0x41, 0x01]), maxLength: TLSWire.maxTLS13CiphertextLength)?.alert == .recordOverflow)
        #expect(TLSWire.validate(Self.header([23, 3, 3, 0x41, 0x00]), maxLength: TLSWire.maxTLS13CiphertextLength) == nil)
    }

    @Test("handshake headers: known types, at most 128 KiB")
    func handshakeHeaders() {
        for type: UInt8 in [0, 1, 2, 4, 8, 11, 12, 13, 14, 15, 16, 20, 22, 24] {
            #expect(TLSWire.validateHandshakeHeader(type: type, length: 100) == nil)
        }
        for type: UInt8 in [3, 6, 7, 9, 10, 17, 23, 0x87, 0xEE, 0xFF] {
            #expect(TLSWire.validateHandshakeHeader(type: type, length: 100)?.alert == .unexpectedMessage)
        }
        #expect(TLSWire.validateHandshakeHeader(type: 1, length: 1 << 17) == nil)
        #expect(TLSWire.validateHandshakeHeader(type: 1, length: (1 << 17) + 1)?.alert == .illegalParameter)
        #expect(TLSWire.validateHandshakeHeader(type: 0xEE, length: 0xFFFFFF)?.alert == .unexpectedMessage)
    }

    @Test("alert records written and read")
    func alertRecords() {
        #expect(TLSWire.alertRecord(.unexpectedMessage) == [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0A])
        #expect(TLSWire.alertRecord(.closeNotify, fatal: false) == [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00])
        let parsed = TLSWire.plaintextAlert([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28, 0x99])
        #expect(parsed?.level == 2 && parsed?.alert == .handshakeFailure)
        #expect(TLSWire.plaintextAlert([0x15, 0x03, 0x03, 0x00, 0x03, 0x02, 0x28, 0]) == nil)
        #expect(TLSWire.plaintextAlert([0x17, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]) == nil)
        #expect(TLSWire.plaintextAlert([0x15, 0x03, 0x03, 0x00, 0x02, 0x02]) == nil)
    }

    @Test("ALPN and supported_versions extension bodies")
    func extensions() {
        let list: [UInt8] = [2, 0x68, 0x32, 8] + Array("http/1.1".utf8)
        #expect(list.withUnsafeBytes { TLSWire.protocolNames($0) } == ["h2", "http/1.1"])
        #expect(([0, UInt8(list.count)] + list).withUnsafeBytes { TLSWire.alpnExtension($0) } == ["h2", "http/1.1"])
        #expect(([0, UInt8(list.count + 1)] + list).withUnsafeBytes { TLSWire.alpnExtension($0) } == nil)
        #expect([UInt8]([2, 0x68]).withUnsafeBytes { TLSWire.protocolNames($0) } == nil)       // runs past the end
        #expect([UInt8]([0, 2, 0x68, 0x32]).withUnsafeBytes { TLSWire.protocolNames($0) } == nil) // empty name
        #expect([UInt8]([4, 3, 4, 3, 3]).withUnsafeBytes { TLSWire.supportedVersions($0) } == [0x0304, 0x0303])
        #expect([UInt8]([3, 3, 4, 3]).withUnsafeBytes { TLSWire.supportedVersions($0) } == nil)
        #expect([UInt8]([4, 3, 4]).withUnsafeBytes { TLSWire.supportedVersions($0) } == nil)
    }

    /// A ClientHello body: legacy_version, random, session id, suites, compression, extensions.
    static func clientHelloBody(_ extensions: [(UInt16, [UInt8])]?) -> [UInt8] {
        var body: [UInt8] = [3, 3] + Array(repeating: 7, count: 32) + [0] + [0, 2, 0x13, 0x01] + [1, 0]
        if let extensions {
            let block = extensions.flatMap { [UInt8($0.0 >> 8), UInt8($0.0 & 0xFF), UInt8($0.1.count >> 8), UInt8($0.1.count & 0xFF)] + $0.1 }
            body += [UInt8(block.count >> 8), UInt8(block.count & 0xFF)] + block
        }
        return body
    }

    @Test("ClientHello: versions, ALPN, server name, signature algorithms, groups and suites, from byte vectors")
    func clientHello() {
        let sni: [UInt8] = [0, 12, 0, 0, 9] + Array("a.example".utf8)
        let body = Self.clientHelloBody([(43, [4, 3, 4, 3, 3]), (16, [0, 3, 2, 0x68, 0x32]), (0, sni),
                                         (13, [0, 4, 4, 3, 8, 4]), (10, [0, 2, 0, 0x1d]), (0xff01, [0])])
        let hello = body.withUnsafeBytes { TLSWire.clientHello($0) }
        var expected = TLSWire.ClientHello(legacyVersion: 0x0303, supportedVersions: [0x0304, 0x0303], applicationProtocols: ["h2"])
        expected.cipherSuites = [0x1301]
        expected.serverName = "a.example"
        expected.signatureSchemes = [0x0403, 0x0804]
        expected.supportedGroups = [0x001d]
        #expect(hello == expected)
        #expect(hello?.offersVersion(in: 0x0304...0x0304) == true)
        #expect(hello?.offersVersion(in: 0x0302...0x0302) == false)
        // Malformed: as OpenSSL's server refuses them (decode_error), nil here.
        for (what, extensions) in [("an empty server_name (a server's acknowledgement, never a client's)", [(UInt16(0), [UInt8]())]),
                                   ("a host_name with a NUL", [(0, [0, 6, 0, 0, 3, 0x61, 0, 0x62])]),
                                   ("an extension twice", [(16, [0, 3, 2, 0x68, 0x32]), (16, [0, 3, 2, 0x68, 0x32])]),
                                   ("an odd signature_algorithms list", [(13, [0, 3, 4, 3, 8])]),
                                   ("an empty supported_groups list", [(10, [0, 0])])] {
            #expect(Self.clientHelloBody(extensions).withUnsafeBytes { TLSWire.clientHello($0) } == nil, "\(what)")
        }
        let old = Self.clientHelloBody(nil).withUnsafeBytes { TLSWire.clientHello($0) }
        var bare = TLSWire.ClientHello(legacyVersion: 0x0303)
        bare.cipherSuites = [0x1301]
        #expect(old == bare)
        #expect(old?.offersVersion(in: 0x0303...0x0304) == true)
        #expect(old?.offersVersion(in: 0x0304...0x0304) == false)
        var truncated = Self.clientHelloBody([(43, [2, 3, 4])])
        truncated.removeLast()
        #expect(truncated.withUnsafeBytes { TLSWire.clientHello($0) } == nil)
    }

    @Test("a real ClientHello from each backend parses, with its versions and ALPN", arguments: allBackends)
    func realClientHello(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let client = try fixture.clientContext { $0.applicationProtocols = ["h2", "http/1.1"] }.makeConnection()
        let wire = TLSMemoryPair()
        try client.setTransport(.memory(wire))
        #expect(client.connect() == -1)
        let record = wire.takeOutgoing()
        #expect(record.count > 9 && record[0] == 22 && record[5] == 1)
        let hello = Array(record[9...]).withUnsafeBytes { TLSWire.clientHello($0) }
        #expect(hello?.applicationProtocols == ["h2", "http/1.1"])
        #expect(hello?.supportedVersions?.contains(0x0304) == true)
        #expect(hello?.supportedVersions?.contains(0x0303) == true)
    }

    /// Feeds `bytes` in pieces of `size` bytes.
    static func read(_ bytes: [UInt8], role: TLSRole, pieces size: Int) -> TLSWireReader {
        var reader = TLSWireReader(role: role)
        var index = 0
        while index < bytes.count {
            let end = min(index + size, bytes.count)
            Array(bytes[index..<end]).withUnsafeBytes { reader.consume($0) }
            index = end
        }
        return reader
    }

    @Test("the reader's verdict does not depend on how the bytes are split")
    func splitInvariance() {
        let streams: [([UInt8], TLSRole, TLSWireViolation?)] = [
            ([0x87, 0x5A, 0x13, 0x81, 0x00, 1, 2, 3], .server, TLSWireViolation(.unexpectedMessage, "a record of unknown content type 135")),
            ([22, 3, 1, 0, 8, 0xEE, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0], .server, TLSWireViolation(.unexpectedMessage, "a handshake message of unknown type 238")),
            ([22, 3, 1, 0, 4, 1, 0, 0, 0] + TLSWire.alertRecord(.closeNotify, fatal: false), .server, nil),
        ]
        for (bytes, role, expected) in streams {
            for size in 1...bytes.count {
                let reader = Self.read(bytes, role: role, pieces: size)
                #expect(reader.violation == expected, "pieces of \(size)")
            }
        }
        let alert = Self.read([22, 3, 1, 0, 4, 1, 0, 0, 0] + TLSWire.alertRecord(.handshakeFailure), role: .server, pieces: 1)
        #expect(alert.lastPlaintextAlert?.level == 2 && alert.lastPlaintextAlert?.description == 40)
    }

    /// A ServerHello record: legacy version 0x0303, `random`, empty session id, suite,
    /// compression, and supported_versions = `version` when given.
    static func serverHello(random: [UInt8], version: UInt16?) -> [UInt8] {
        var body: [UInt8] = [3, 3] + random + [0, 0x13, 0x01, 0]
        if let version { body += [0, 6, 0, 43, 0, 2, UInt8(version >> 8), UInt8(version & 0xFF)] }
        let message = [2, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        return [22, 3, 3, UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
    }

    @Test("a client: after a TLS 1.3 ServerHello a plaintext alert is refused; after TLS 1.2's or a HelloRetryRequest it is not")
    func protectionPoints() {
        let close = TLSWire.alertRecord(.closeNotify, fatal: false)
        let tls13 = Self.read(Self.serverHello(random: Array(repeating: 1, count: 32), version: 0x0304) + close, role: .client, pieces: 3)
        #expect(tls13.isTLS13 && tls13.peerProtected)
        #expect(tls13.violation?.alert == .unexpectedMessage)
        let tls12 = Self.read(Self.serverHello(random: Array(repeating: 1, count: 32), version: nil) + close, role: .client, pieces: 3)
        #expect(tls12.violation == nil && !tls12.peerProtected)
        #expect(tls12.lastPlaintextAlert?.description == 0)
        let hrr = Self.read(Self.serverHello(random: TLSWire.helloRetryRequestRandom, version: 0x0304) + [20, 3, 3, 0, 1, 1] + close,
                            role: .client, pieces: 2)
        #expect(hrr.violation == nil && !hrr.peerProtected)
        // TLS 1.2 after the peer's ChangeCipherSpec: a 2-byte alert cannot be a protected one.
        let afterCCS = Self.read(Self.serverHello(random: Array(repeating: 1, count: 32), version: nil) + [20, 3, 3, 0, 1, 1] + close,
                                 role: .client, pieces: 5)
        #expect(afterCCS.violation?.alert == .badRecordMAC)
    }
}
