import Foundation
import Testing
import TLSKit
@_spi(TLSBackendImplementation) import TLSCore

/// Rules that once lived in one backend only, now written once in TLSCore: the same
/// answer on every backend.
@Suite("Shared rules", .timeLimit(.minutes(5)), .sharesProcess)
struct SharedRuleTests {
    @Test("the OCSP staple rule: one verdict table, one wording, one alert, for every backend")
    func ocspStapleRule() {
        func judge(_ staple: TLSOCSPVerdict?, _ stapling: TLSOCSPStapling) -> String? {
            TLSOCSPRefusal.judge(staple, stapling: stapling).map { "\($0.failure) \($0.alert): \($0.reason)" }
        }
        let alert = TLSAlert.badCertificateStatusResponse
        #expect(judge(.good, .request) == nil)
        #expect(judge(.good, .require) == nil)
        #expect(judge(nil, .request) == nil)
        #expect(judge(.revoked, .none) == nil)
        #expect(judge(nil, .require) == "\(TLSError.VerificationFailure.other) \(alert): the server sent no OCSP staple, and one is required")
        #expect(judge(.revoked, .request) == "\(TLSError.VerificationFailure.revoked) \(alert): the stapled OCSP response says the certificate is revoked")
        #expect(judge(.revoked, .require) == "\(TLSError.VerificationFailure.revoked) \(alert): the stapled OCSP response says the certificate is revoked")
        #expect(judge(.invalid("the response is out of date"), .request)
                == "\(TLSError.VerificationFailure.other) \(alert): the stapled OCSP response is not acceptable: the response is out of date")
    }

    @Test("self-signed identity arguments: checked once, by TLSKit, the same refusal on every backend", arguments: allBackends)
    func selfSignedIdentityArguments(backend: Backend) throws {
        func refusal(_ commonName: String, _ names: [String], _ days: Int) -> String? {
            do {
                _ = try backend.type.makeSelfSignedIdentity(commonName: commonName, subjectAlternativeNames: names, validityDays: days)
                return nil
            } catch let error as TLSError {
                #expect(error.code == .invalidConfiguration)
                #expect(error.backend == .tlsKit)
                return error.message
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal("a", ["a.test"], 0) == "validityDays must be between 1 and 36600, got 0")
        #expect(refusal("a", ["a.test"], 36_601) == "validityDays must be between 1 and 36600, got 36601")
        #expect(refusal("", ["a.test"], 1) == "the common name must be 1 to 64 bytes long, got 0")
        #expect(refusal(String(repeating: "c", count: 65), ["a.test"], 1) == "the common name must be 1 to 64 bytes long, got 65")
        #expect(refusal("a", ["a.test", ""], 1) == "the subject alternative name \"\" is neither a DNS name nor an IP address")
        #expect(refusal("a", ["a.test,IP:1.2.3.4"], 1)
                == "the subject alternative name \"a.test,IP:1.2.3.4\" is neither a DNS name nor an IP address")
        // The bounds themselves are accepted.
        #expect(refusal(String(repeating: "c", count: 64), ["*.a.test", "dot.example.", "::1"], 36_600) == nil)
    }

    @Test("empty trust roots .certificates([]): refused at context creation, by TLSKit", arguments: allBackends)
    func emptyTrustRoots(backend: Backend) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([])
        configuration.serverName = "localhost"
        let error = #expect(throws: TLSError.self) { try backend.type.makeContext(configuration) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.backend == .tlsKit)
        #expect(error?.message.contains(".certificates([]) is empty") == true, "\(String(describing: error))")
    }

    @Test("one file reader, one cap: a file over 16 MiB is refused naming the path and the limit", arguments: allBackends)
    func fileSizeCap(backend: Backend) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("huge.pem").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: (16 << 20) + 1)))
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([.file(path)])
        configuration.serverName = "localhost"
        let error = #expect(throws: TLSError.self) { try backend.type.makeContext(configuration) }
        #expect(error?.code == .badCertificate)
        #expect(error?.backend == backend.id)
        #expect(error?.message.contains("is larger than 16 MiB") == true, "\(String(describing: error))")
        #expect(error?.message.contains(path) == true)

        // Exactly at the cap: read (and then refused as not a certificate).
        let atCap = directory.appendingPathComponent("at-cap.pem").path
        #expect(FileManager.default.createFile(atPath: atCap, contents: Data(count: 16 << 20)))
        configuration.trustRoots = .certificates([.file(atCap)])
        let other = #expect(throws: TLSError.self) { try backend.type.makeContext(configuration) }
        #expect(other?.message.contains("larger than") == false, "\(String(describing: other))")
    }

    @Test("an invalid serverName: the same error whether set in the configuration or on the connection",
          arguments: allBackends)
    func invalidServerName(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let fromConfiguration = #expect(throws: TLSError.self) {
            try fixture.clientContext { $0.serverName = "bad name" }
        }
        let connection = try fixture.clientContext().makeConnection()
        try connection.setTransport(.memory(TLSMemoryPair()))
        connection.serverName = "bad name"
        #expect(connection.step { $0.connect() } == Step(-1, .ssl))
        let fromConnection = connection.lastError
        #expect(fromConfiguration?.code == .invalidConfiguration)
        #expect(fromConnection?.code == .invalidConfiguration)
        #expect(fromConfiguration?.backend == .tlsKit)
        #expect(fromConnection?.backend == fromConfiguration?.backend)
        #expect(fromConnection?.message == fromConfiguration?.message)
    }

    @Test("a DNS SAN with a NUL inside: kept whole by certificateInfo on every backend, and never matched",
          arguments: allBackends)
    func nulInDNSName(backend: Backend) throws {
        let der = try CertificateBytes.selfSignedWithSANs(["evil.example\u{0}.good.example", "plain.example"])
        let info = try backend.type.certificateInfo(der: der)
        #expect(info.dnsNames == ["evil.example\u{0}.good.example", "plain.example"])
        let leaf = der.withUnsafeBytes { TLSLeafIdentity(der: $0) }
        // Compared with the names written into the certificate, not with `info`: both
        // backends fill `info.dnsNames` from `TLSLeafIdentity` itself.
        #expect(leaf?.dnsNames == ["evil.example\u{0}.good.example", "plain.example"])
        #expect(leaf?.ipAddresses == [])
        #expect(leaf.map { TLSHostName.matches("evil.example", leaf: $0) } == false)
        #expect(leaf.map { TLSHostName.matches("plain.example", leaf: $0) } == true)
    }
}

/// Certificates with hand-encoded extensions, made with the `openssl` tool.
enum CertificateBytes {
    /// A self-signed certificate whose subjectAltName holds exactly these DNS names,
    /// byte for byte (a NUL included), as DER.
    static func selfSignedWithSANs(_ names: [String]) throws -> [UInt8] {
        func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
            precondition(content.count < 128)
            return [tag, UInt8(content.count)] + content
        }
        let generalNames = tlv(0x30, names.flatMap { tlv(0x82, Array($0.utf8)) })
        let hex = generalNames.map { String(format: "%02X", $0) }.joined()
        let factory = try CertificateFactory()
        defer { factory.remove() }
        try factory.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                             "-keyout", factory.path("nul.key"), "-out", factory.path("nul.pem"), "-days", "2",
                             "-subj", "/CN=nul test", "-addext", "subjectAltName=DER:\(hex)"])
        return firstDER(ofPEM: try factory.read("nul.pem"))
    }
}
