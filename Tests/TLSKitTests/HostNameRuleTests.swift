import Foundation
import Testing
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore

/// The RFC 6125 host-name rule and the server-name rules, written once in TLSCore
/// (`TLSHostName`): checked on the rule itself with hand-made certificates, and end to end
/// on every backend.
@Suite("Host-name rules", .timeLimit(.minutes(5)), .sharesProcess)
struct HostNameRuleTests {
    static func leaf(_ sans: [String]) throws -> TLSLeafIdentity {
        let der = try CertificateBytes.selfSignedWithSANs(sans)
        return try #require(der.withUnsafeBytes { TLSLeafIdentity(der: $0) })
    }

    @Test("ASCII case folding only: a SAN spelled with KELVIN SIGN never matches key.example, nor a host spelled with it")
    func noUnicodeCaseFolding() throws {
        let kelvin = try Self.leaf(["\u{212A}ey.example", "PLAIN.Example"])
        #expect(kelvin.dnsNames == ["\u{212A}ey.example", "PLAIN.Example"])
        #expect(TLSHostName.matches("key.example", leaf: kelvin) == false)
        #expect(TLSHostName.matches("KEY.EXAMPLE", leaf: kelvin) == false)
        #expect(TLSHostName.matches("\u{212A}ey.example", leaf: kelvin) == false)
        #expect(TLSHostName.matches("plain.example", leaf: kelvin) == true)
        #expect(TLSHostName.matches("pLaIn.eXaMpLe", leaf: kelvin) == true)

        let ascii = try Self.leaf(["key.example"])
        #expect(TLSHostName.matches("KEY.example", leaf: ascii) == true)
        #expect(TLSHostName.matches("\u{212A}ey.example", leaf: ascii) == false)
        // Other Unicode folds to ASCII: LATIN CAPITAL I WITH DOT ABOVE, LONG S.
        #expect(TLSHostName.matches("\u{0130}.example", leaf: try Self.leaf(["i.example"])) == false)
        #expect(TLSHostName.matches("\u{017F}.example", leaf: try Self.leaf(["s.example"])) == false)
    }

    @Test("a SAN ending in a dot matches the name without it, and a name ending in a dot matches the SAN without it")
    func trailingDots() throws {
        let dotted = try Self.leaf(["dot.example."])
        #expect(TLSHostName.matches("dot.example", leaf: dotted) == true)
        #expect(TLSHostName.matches("dot.example.", leaf: dotted) == true)
        #expect(TLSHostName.matches("other.example", leaf: dotted) == false)
        let plain = try Self.leaf(["plain.example"])
        #expect(TLSHostName.matches("plain.example.", leaf: plain) == true)
        // One dot only: an empty label is never a match.
        #expect(TLSHostName.matches("dot.example", leaf: try Self.leaf(["dot.example.."])) == false)
        let wildcard = try Self.leaf(["*.dot.example."])
        #expect(TLSHostName.matches("a.dot.example", leaf: wildcard) == true)
    }

    @Test("end to end: a server certificate whose SAN ends in a dot verifies for the name without it", arguments: allBackends)
    func trailingDotEndToEnd(backend: Backend) throws {
        let fixture = try Fixture(backend, names: ["dot.example."])
        let link = try MemoryLink(fixture, client: { $0.serverName = "dot.example" })
        #expect(link.handshake().client.last == Step(1, .none), "\(String(describing: link.client.lastError))")
        #expect(link.client.peerVerification == .verified)
        let wrong = try MemoryLink(fixture, client: { $0.serverName = "other.example" })
        #expect(wrong.handshake().client.last == Step(-1, .ssl))
        #expect(wrong.client.lastError?.verificationFailure == .hostnameMismatch)
    }

    @Test("server names: labels of 63 bytes and names of 253 bytes are valid, one byte more is refused by TLSKit",
          arguments: allBackends)
    func lengthLimits(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let label63 = String(repeating: "a", count: 63)
        // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 bytes.
        let name253 = [label63, label63, label63, String(repeating: "b", count: 61)].joined(separator: ".")
        #expect(name253.utf8.count == 253)
        for valid in ["\(label63).example", name253, name253 + "."] {
            _ = try fixture.clientContext { $0.serverName = valid }
        }
        for invalid in ["a\(label63).example", name253 + "c", String(repeating: "a", count: 64)] {
            let error = #expect(throws: TLSError.self) { try fixture.clientContext { $0.serverName = invalid } }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.backend == .tlsKit)
        }
        // A SAN over the limits never matches, even an identical reference name.
        let longLabel = "a\(label63).example"
        #expect(TLSHostName.matches(longLabel, leaf: try Self.leaf([longLabel])) == false)
    }

    /// The extension types of the ClientHello in `flight` (one handshake record).
    static func extensionTypes(_ flight: [UInt8]) throws -> [UInt16] {
        try #require(flight.count > 9 && flight[0] == 22 && flight[5] == 1)
        let hello = Array(flight[9...])
        var index = HostilePeerTests.extensionsOffset(clientHello: hello)
        let end = index + 2 + (Int(hello[index]) << 8 | Int(hello[index + 1]))
        index += 2
        var types: [UInt16] = []
        while index + 4 <= end {
            types.append(UInt16(hello[index]) << 8 | UInt16(hello[index + 1]))
            index += 4 + (Int(hello[index + 2]) << 8 | Int(hello[index + 3]))
        }
        return types
    }

    @Test("an IP literal is never sent as SNI (RFC 6066 §3), yet verified against the IP SANs; a DNS name is sent",
          arguments: allBackends)
    func ipLiteralNotSentAsSNI(backend: Backend) throws {
        let fixture = try Fixture(backend)
        for (name, sent) in [("127.0.0.1", false), ("::1", false), ("[::1]", false), ("localhost", true)] {
            let link = try MemoryLink(fixture, client: { $0.serverName = name })
            #expect(link.client.step { $0.doHandshake() } == Step(-1, .wantRead))
            let hello = link.clientWire.takeOutgoing()
            #expect(try Self.extensionTypes(hello).contains(0) == sent, "\(name)")
            link.serverWire.deliverIncoming(hello)
            let steps = link.handshake()
            #expect(steps.client.last == Step(1, .none), "\(name): \(String(describing: link.client.lastError))")
            #expect(link.client.peerVerification == .verified, "\(name)")
            #expect(link.server.requestedServerName == (sent ? "localhost" : nil), "\(name)")
        }
    }
}
