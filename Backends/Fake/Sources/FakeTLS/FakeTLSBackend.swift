// FakeTLS: a third TLSKit backend living outside the root package, written only against
// the products TLSCore (with its `TLSBackendImplementation` SPI) and nothing else — no
// C library, no `package` symbol, no @testable. It exists to prove that the backend SPI
// is open: the conformance suite (TLSKitConformance), TLSSocket and TLSKitNIO run over
// it unchanged.
//
// INSECURE BY CONSTRUCTION, for tests only: FakeTLS frames its messages exactly as TLS
// does (records, a ClientHello and ServerHello that real parsers accept, TLS 1.2 or
// TLS 1.3 record protection *shapes*), but protects nothing. Records carry plaintext
// behind an all-zero "tag"; no key is exchanged and the private key is never used.
// Trust is exact: a peer's leaf certificate is trusted only if it is byte for byte one
// of the configured trust roots (a self-signed certificate trusts itself), with the
// core's host-name and pin checks on top; there is no chain building, no signature and
// no validity-date check.
@_spi(TLSBackendImplementation) public import TLSCore
import Foundation

/// The FakeTLS provider (see the file header: insecure, for tests of the backend SPI).
public enum FakeTLSBackend: TLSBackend {
    /// `"FakeTLS"`.
    public static let id = TLSBackendID("FakeTLS")
    /// The protocol this package implements; there is no C library.
    public static let libraryVersion = "FakeTLS 1.0 (no protection; tests only)"
    /// TLS 1.3 (its shape), ALPN, SNI and mutual TLS (host-name checks are the core's, on
    /// every backend); nothing
    /// that needs cryptography or a library (no resumption, exporters, key log, OCSP,
    /// cipher or group selection, custom verification, self-signed identities).
    public static let capabilities: TLSCapabilities = [.tls13, .alpn, .serverNameIndication, .mutualTLS]

    /// FakeTLS parses no certificate fields beyond what the core reads itself.
    public static func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo {
        throw TLSError(.unsupported, "FakeTLS does not parse certificates (no X.509 library)", backend: id)
    }

    /// FakeTLS cannot sign, so it cannot make a certificate (it lacks the capability, so
    /// the core refuses the call before it gets here).
    @_spi(TLSBackendImplementation)
    public static func generateSelfSignedIdentity(commonName: String, subjectAlternativeNames: [String], validityDays: Int) throws -> TLSIdentity {
        throw TLSError(.unsupported, "FakeTLS cannot make a self-signed identity (no cryptography; capability selfSignedIdentity)",
                       backend: id)
    }

    /// Loads the configuration's certificates, keys and roots once.
    @_spi(TLSBackendImplementation)
    public static func makeContextEngine(_ configuration: TLSConfiguration) throws -> any TLSContextEngine {
        try FakeTLSContextEngine(configuration)
    }
}

/// What one configuration loads: this side's chain, the trusted certificates.
final class FakeTLSContextEngine: TLSContextEngine {
    let configuration: TLSConfiguration
    /// This side's certificate chain, leaf first (DER); empty without one.
    let chain: [[UInt8]]
    /// The certificates trusted exactly (DER).
    let roots: Set<[UInt8]>

    init(_ configuration: TLSConfiguration) throws {
        func unsupported(_ option: String) -> TLSError {
            TLSError(.unsupported, "\(option) is not supported by FakeTLS", backend: FakeTLSBackend.id)
        }
        if configuration.privateKeyPassphrase != nil { throw unsupported("privateKeyPassphrase (encrypted keys)") }
        if !configuration.additionalCredentials.isEmpty { throw unsupported("additionalCredentials") }
        if !configuration.serverNameCredentials.isEmpty { throw unsupported("serverNameCredentials") }
        if !configuration.certificateRevocationLists.isEmpty { throw unsupported("certificateRevocationLists") }
        if configuration.trustsPartialChains { throw unsupported("trustsPartialChains (every trusted certificate is an anchor)") }
        self.configuration = configuration

        if let source = configuration.certificateChain {
            let bytes = try source.load(backend: FakeTLSBackend.id, code: .badCertificate, what: "certificate chain")
            chain = try PEM.certificates(bytes, what: "certificate chain")
            guard let keySource = configuration.privateKey else {
                throw TLSError(.invalidConfiguration, "a certificate chain needs a private key", backend: FakeTLSBackend.id)
            }
            try PEM.checkPrivateKey(try keySource.load(backend: FakeTLSBackend.id, code: .badPrivateKey, what: "private key"))
        } else {
            chain = []
        }

        let verifies = configuration.certificateVerification != .insecureNoVerification
        switch configuration.trustRoots {
        case .certificates(let sources):
            var roots = Set<[UInt8]>()
            for source in sources {
                let bytes = try source.load(backend: FakeTLSBackend.id, code: .badCertificate, what: "trust root")
                roots.formUnion(try PEM.certificates(bytes, what: "trust root"))
            }
            self.roots = roots
        case .caFile(let path):
            let bytes = try TLSDataSource.file(path).load(backend: FakeTLSBackend.id, code: .badCertificate, what: "CA file")
            roots = Set(try PEM.certificates(bytes, what: "CA file"))
        case .system, .caDirectory:
            // A server that does not ask for client certificates never uses its roots.
            let used = configuration.clientAuthentication != .none || (verifies && configuration.certificateChain == nil)
            if used { throw unsupported("trustRoots \(configuration.trustRoots) (FakeTLS trusts only given certificates)") }
            roots = []
        }
    }

    func makeConnectionEngine(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSConnectionEngine {
        FakeTLSConnectionEngine(context: self, role: role, transport: transport, serverName: serverName)
    }

    func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8] {
        switch algorithm {
        case .sha256: return SHA2.sha256(bytes)
        case .sha384: return SHA2.sha384(bytes)
        case .sha512: return SHA2.sha512(bytes)
        }
    }
}

/// PEM and DER input, checked as far as FakeTLS can without an X.509 parser.
enum PEM {
    /// The certificates in PEM text (every CERTIFICATE block) or one DER certificate.
    static func certificates(_ bytes: [UInt8], what: String) throws -> [[UInt8]] {
        let ders: [[UInt8]]
        if TLSDataSource.isPEM(bytes) {
            ders = try blocks(bytes, what: what).filter { $0.label == "CERTIFICATE" }.map(\.der)
        } else {
            ders = [bytes]
        }
        guard !ders.isEmpty else {
            throw TLSError(.badCertificate, "no certificate in the \(what)", backend: FakeTLSBackend.id)
        }
        for der in ders where !der.withUnsafeBytes({ TLSLeafIdentity(der: $0) != nil }) {
            throw TLSError(.badCertificate, "the \(what) holds bytes that are not a certificate", backend: FakeTLSBackend.id)
        }
        return ders
    }

    /// A private key must at least be one: a PEM key block or a DER SEQUENCE. FakeTLS
    /// never uses it (it signs nothing); it refuses what is plainly not a key.
    static func checkPrivateKey(_ bytes: [UInt8]) throws {
        let isKey: Bool
        if TLSDataSource.isPEM(bytes) {
            isKey = try blocks(bytes, what: "private key").contains { $0.label.hasSuffix("PRIVATE KEY") && !$0.label.hasPrefix("ENCRYPTED") }
        } else {
            isKey = bytes.first == 0x30 && bytes.count > 16
        }
        guard isKey else {
            throw TLSError(.badPrivateKey, "the private key is neither a PEM private key nor DER", backend: FakeTLSBackend.id)
        }
    }

    /// Every `-----BEGIN X-----` … `-----END X-----` block, base64-decoded.
    static func blocks(_ bytes: [UInt8], what: String) throws -> [(label: String, der: [UInt8])] {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw TLSError(.badCertificate, "the \(what) is not valid PEM text", backend: FakeTLSBackend.id)
        }
        var result: [(String, [UInt8])] = []
        var label: String?
        var body = ""
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                label = String(line.dropFirst(11).dropLast(5))
                body = ""
            } else if line.hasPrefix("-----END "), let current = label {
                guard let der = Data(base64Encoded: body) else {
                    throw TLSError(.badCertificate, "the \(what) has a \(current) block that is not base64", backend: FakeTLSBackend.id)
                }
                result.append((current, Array(der)))
                label = nil
            } else if label != nil {
                body += line
            }
        }
        return result
    }
}
