import Foundation
import Testing
@_spi(TLSBackendImplementation) import TLSCore
import TLSKit

#if canImport(Glibc)
import Glibc
#endif

/// The DER reader behind host-name and pin checks (`TLSLeafIdentity`), held to what the
/// libraries' own certificate parsers read, and to refusing anything malformed.
@Suite("Leaf identity reader", .timeLimit(.minutes(5)), .sharesProcess)
struct LeafIdentityTests {
    /// What each certificate of the matrix holds, written out from how
    /// `VerificationMatrixTests.makeFactory` issues it (`-subj /CN=…`, `subjectAltName=…`
    /// in that order): the reader is compared with these, never with itself. Both
    /// backends' `certificateInfo` take the SANs (and GnuTLS the CN too) from
    /// `TLSLeafIdentity`, so comparing the two would compare the reader with itself.
    struct Expected: Sendable {
        let name: String
        let commonName: String
        var dnsNames: [String] = []
        var ipAddresses: [String] = []
    }

    static let local = (dns: ["localhost"], ip: ["127.0.0.1", "::1"])

    static let certificates: [Expected] = [
        Expected(name: "good", commonName: "localhost", dnsNames: local.dns, ipAddresses: local.ip),
        Expected(name: "wild", commonName: "*.example.com", dnsNames: ["*.example.com"]),
        Expected(name: "partial", commonName: "w*.example.com", dnsNames: ["w*.example.com"]),
        Expected(name: "iponly", commonName: "localhost", ipAddresses: ["127.0.0.1"]),
        Expected(name: "cnonly", commonName: "localhost"),
        Expected(name: "cnplus", commonName: "localhost", dnsNames: ["other.example"]),
        Expected(name: "cnip", commonName: "127.0.0.1"),
        Expected(name: "selfsigned", commonName: "localhost", dnsNames: local.dns, ipAddresses: local.ip),
        Expected(name: "weak", commonName: "localhost", dnsNames: local.dns, ipAddresses: local.ip),
        Expected(name: "client", commonName: "TLSKit test client"),
    ]

    @Test("names and public key: the known contents, as `openssl x509` prints them", arguments: allBackends)
    func sameAsLibraries(backend: Backend) throws {
        let f = try VerificationMatrixTests.factory.get()
        for expected in Self.certificates {
            let name = expected.name
            let der = firstDER(ofPEM: try f.read("\(name).pem"))
            let info = try backend.type.certificateInfo(der: der)
            let leaf = try #require(der.withUnsafeBytes { TLSLeafIdentity(der: $0) }, "\(name)")
            #expect(leaf.dnsNames == expected.dnsNames, "\(name)")
            #expect(leaf.ipAddresses == expected.ipAddresses, "\(name)")
            #expect(leaf.commonName == expected.commonName, "\(name)")
            #expect(info.dnsNames == expected.dnsNames, "\(name)")
            #expect(info.ipAddresses == expected.ipAddresses, "\(name)")
            #expect(info.commonName == expected.commonName, "\(name)")
            // The same names as libcrypto's own printer gives them (`openssl x509 -ext
            // subjectAltName`, `-subject`), so the literals above are the certificate's.
            let printed = try OpenSSLPrinted(f, "\(name).pem")
            #expect(printed.dnsNames == expected.dnsNames, "\(name): \(printed)")
            #expect(printed.ipAddresses == expected.ipAddresses.map(OpenSSLPrinted.openSSLText), "\(name): \(printed)")
            #expect(printed.commonName == expected.commonName, "\(name): \(printed)")
            // The SubjectPublicKeyInfo bytes, as `openssl x509 -pubkey` prints them.
            let publicKeyPEM = try f.openssl(["x509", "-in", f.path("\(name).pem"), "-noout", "-pubkey"])
            let spki = Array(try #require(Data(base64Encoded: publicKeyPEM.split(separator: "\n")
                .filter { !$0.hasPrefix("-----") }.joined())))
            #expect(Array(der[leaf.subjectPublicKeyInfo]) == spki, "\(name)")
        }
    }

    @Test("validity dates: UTCTime and GeneralizedTime (after 2049) read as the library reads them", arguments: allBackends)
    func validityDates(backend: Backend) throws {
        let f = try CertificateFactory()
        defer { f.remove() }
        try f.makeCA("ca")
        for (name, days) in [("now", (-1, 2)), ("old", (-400, -300)), ("far", (1, 12_000))] {
            try f.issue(name, issuer: "ca", names: ["localhost"], days: days)
            let der = firstDER(ofPEM: try f.read("\(name).pem"))
            let info = try backend.type.certificateInfo(der: der)
            let leaf = try #require(der.withUnsafeBytes { TLSLeafIdentity(der: $0) }, "\(name)")
            #expect(leaf.validity == info.notValidBefore...info.notValidAfter, "\(name)")
            // 12 000 days from now is after 2049: GeneralizedTime (tag 0x18) in the DER.
            let generalized: [UInt8] = [0x18, 0x0F, 0x32, 0x30]   // tag, 15 bytes, "20…"
            let hasGeneralized = (0...(der.count - 4)).contains { der[$0..<$0 + 4].elementsEqual(generalized) }
            #expect(hasGeneralized == (name == "far"), "\(name)")
        }
    }

    @Test("every truncation and every single-byte change of a certificate is handled without a crash")
    func malformed() throws {
        let f = try VerificationMatrixTests.factory.get()
        let der = firstDER(ofPEM: try f.read("good.pem"))
        try #require(der.count > 100)
        // Every strict prefix is refused: the outer SEQUENCE's length runs past the end.
        for length in 0..<der.count {
            #expect(Array(der.prefix(length)).withUnsafeBytes { TLSLeafIdentity(der: $0) } == nil, "prefix \(length)")
        }
        // Trailing bytes after the certificate are refused too.
        #expect((der + [0]).withUnsafeBytes { TLSLeafIdentity(der: $0) } == nil)
        // A changed byte gives nil or some reading, never a crash or a read out of bounds.
        var refused = 0
        for index in der.indices {
            for value: UInt8 in [0x00, 0x30, 0x7F, 0x80, 0x84, 0xFF] where der[index] != value {
                var changed = der
                changed[index] = value
                if changed.withUnsafeBytes({ TLSLeafIdentity(der: $0) }) == nil { refused += 1 }
            }
        }
        #expect(refused > 0)
        #expect([UInt8]().withUnsafeBytes { TLSLeafIdentity(der: $0) } == nil)
    }

    @Test("directory-string kinds of a CN-only certificate: UTF-8, PrintableString, BMPString")
    func commonNameStrings() throws {
        let f = try CertificateFactory()
        defer { f.remove() }
        for (flag, expected) in [("-utf8", "h\u{f4}te.example"), ("", "localhost")] {
            let subject = "/CN=\(expected)"
            try f.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                           "-keyout", f.path("cn.key"), "-out", f.path("cn.pem"), "-days", "1", "-subj", subject]
                          + (flag.isEmpty ? [] : [flag]))
            let der = firstDER(ofPEM: try f.read("cn.pem"))
            let leaf = try #require(der.withUnsafeBytes { TLSLeafIdentity(der: $0) })
            #expect(leaf.commonName == expected)
            #expect(leaf.dnsNames.isEmpty)
        }
        // A BMPString CN (string_mask that forces it), as libcrypto would print it.
        try f.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                       "-keyout", f.path("bmp.key"), "-out", f.path("bmp.pem"), "-days", "1",
                       "-subj", "/CN=b\u{e9}mp.example", "-utf8", "-config", try Self.bmpConfig(f)])
        let der = firstDER(ofPEM: try f.read("bmp.pem"))
        #expect(der.firstRange(of: [0x1E, 0x18, 0x00, 0x62, 0x00, 0xE9]) != nil, "the CN should be a BMPString")
        let leaf = try #require(der.withUnsafeBytes { TLSLeafIdentity(der: $0) })
        #expect(leaf.commonName == "b\u{e9}mp.example")
    }

    /// An `openssl req` configuration whose string mask (PKIX) makes a BMPString of a non-ASCII CN.
    static func bmpConfig(_ f: CertificateFactory) throws -> String {
        let path = f.path("bmp.cnf")
        try "[ req ]\ndistinguished_name = dn\nstring_mask = pkix\n[ dn ]\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// The names `openssl x509` prints for a certificate file: an oracle that shares no code
/// with TLSKit.
struct OpenSSLPrinted: CustomStringConvertible {
    var dnsNames: [String] = []
    /// As libcrypto prints them: IPv4 dotted, IPv6 as eight groups of hex without zero
    /// compression (`0:0:0:0:0:0:0:1`).
    var ipAddresses: [String] = []
    var commonName: String?

    init(_ f: CertificateFactory, _ file: String) throws {
        // `-ext subjectAltName` prints the header line and then `DNS:a, IP Address:b`.
        let san = try f.openssl(["x509", "-in", f.path(file), "-noout", "-ext", "subjectAltName"])
        for line in san.split(separator: "\n").dropFirst() {
            for entry in line.trimmingCharacters(in: .whitespaces).components(separatedBy: ", ") {
                if entry.hasPrefix("DNS:") { dnsNames.append(String(entry.dropFirst("DNS:".count))) }
                if entry.hasPrefix("IP Address:") { ipAddresses.append(String(entry.dropFirst("IP Address:".count))) }
            }
        }
        // RFC 2253 with UTF-8 and no escaping of the names used here: `CN=localhost`.
        let subject = try f.openssl(["x509", "-in", f.path(file), "-noout", "-subject", "-nameopt", "RFC2253,-esc_msb"])
        commonName = subject.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: ",")
            .first { $0.hasPrefix("subject=CN=") || $0.hasPrefix("CN=") }
            .map { String($0.dropFirst($0.hasPrefix("subject=") ? "subject=CN=".count : "CN=".count)) }
    }

    /// libcrypto's text for an address TLSKit writes with `inet_ntop`.
    static func openSSLText(_ address: String) -> String {
        guard address.contains(":") else { return address }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return "invalid \(address)" }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16, uppercase: true) }
            .joined(separator: ":")
    }

    var description: String { "DNS \(dnsNames), IP \(ipAddresses), CN \(commonName ?? "none")" }
}
