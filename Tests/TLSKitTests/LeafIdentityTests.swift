import Foundation
import Testing
@_spi(TLSBackendImplementation) import TLSCore
import TLSKit

/// The DER reader behind host-name and pin checks (`TLSLeafIdentity`), held to what the
/// libraries' own certificate parsers read, and to refusing anything malformed.
@Suite("Leaf identity reader", .timeLimit(.minutes(5)), .sharesProcess)
struct LeafIdentityTests {
    static let certificates = ["good", "wild", "partial", "iponly", "cnonly", "cnplus", "cnip", "selfsigned", "weak", "client"]

    @Test("names and public key as every backend's certificate parser reads them", arguments: allBackends)
    func sameAsLibraries(backend: Backend) throws {
        let f = try VerificationMatrixTests.factory.get()
        for name in Self.certificates {
            let der = firstDER(ofPEM: try f.read("\(name).pem"))
            let info = try backend.type.certificateInfo(der: der)
            let leaf = try #require(der.withUnsafeBytes { TLSLeafIdentity(der: $0) }, "\(name)")
            #expect(leaf.dnsNames == info.dnsNames, "\(name)")
            #expect(leaf.ipAddresses == info.ipAddresses, "\(name)")
            #expect(leaf.commonName == info.commonName, "\(name)")
            // The SubjectPublicKeyInfo bytes, as `openssl x509 -pubkey` prints them.
            let publicKeyPEM = try f.openssl(["x509", "-in", f.path("\(name).pem"), "-noout", "-pubkey"])
            let spki = Array(try #require(Data(base64Encoded: publicKeyPEM.split(separator: "\n")
                .filter { !$0.hasPrefix("-----") }.joined())))
            #expect(Array(der[leaf.subjectPublicKeyInfo]) == spki, "\(name)")
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
