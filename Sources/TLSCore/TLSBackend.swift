/// A TLS provider: OpenSSL or GnuTLS, or a third backend written against the
/// `TLSBackendImplementation` SPI (see `Docs/writing-a-backend.md`). Pick one with a
/// package trait; use `DefaultTLSBackend` from `TLSKit` to write code that does not name it.
///
/// A backend makes contexts (`SSL_CTX_new`), which make connections (`SSL_new`). The
/// requirements are static: a backend is a type (`OpenSSLBackend.self`), and generic code
/// takes `B: TLSBackend` or `any TLSBackend.Type`. ``makeContext(_:)`` is written once
/// here, not by the backends: it validates the configuration and checks it against
/// ``capabilities`` before the backend sees it, so no backend can skip either step.
public protocol TLSBackend: Sendable {
    /// The backend's identity: ``TLSBackendID/openSSL``, ``TLSBackendID/gnuTLS``, or a
    /// third party's.
    static var id: TLSBackendID { get }
    /// The version of the C library loaded at run time, e.g. `"OpenSSL 3.0.19 …"`.
    static var libraryVersion: String { get }
    /// What this backend can do beyond the common contract. The one source of truth:
    /// ``makeContext(_:)`` and ``TLSConnection`` both check this set.
    static var capabilities: TLSCapabilities { get }

    /// Parses a DER certificate: subject, issuer, SANs, validity, fingerprints.
    /// - Throws: ``TLSError/Code/badCertificate`` for bytes that are not a certificate.
    static func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo

    /// Generates a fresh key (ECDSA P-256) and a self-signed certificate for the given
    /// DNS names and IP addresses, valid from one hour ago for `validityDays` days.
    /// Called only by ``makeSelfSignedIdentity(commonName:subjectAlternativeNames:validityDays:)``,
    /// after the core checked ``TLSCapabilities/selfSignedIdentity`` and the arguments.
    @_spi(TLSBackendImplementation)
    static func generateSelfSignedIdentity(
        commonName: String,
        subjectAlternativeNames: [String],
        validityDays: Int
    ) throws -> TLSIdentity

    /// Builds the backend's context engine from a configuration that the core has already
    /// validated and checked against ``capabilities``. Called only by ``makeContext(_:)``.
    @_spi(TLSBackendImplementation)
    static func makeContextEngine(_ configuration: TLSConfiguration) throws -> any TLSContextEngine
}

extension TLSBackend {
    /// Creates a context: validates the configuration, refuses any option that needs a
    /// capability this backend lacks (``TLSError/Code/unsupported`` naming the option and
    /// the backend), then loads certificates, keys and the trust store once.
    /// - Throws: ``TLSError`` when the configuration is invalid, unsupported, or cannot be loaded.
    public static func makeContext(_ configuration: TLSConfiguration) throws -> TLSContext {
        try configuration.validate()
        try configuration.checkSupported(by: capabilities, backend: id)
        let engine = try makeContextEngine(configuration)
        return TLSContext(configuration: configuration, backend: Self.self, engine: engine)
    }

    /// Generates a fresh key (ECDSA P-256) and a self-signed certificate for the given
    /// DNS names and IP addresses, valid from one hour ago for `validityDays` days.
    /// For demos and tests; production servers load a CA-issued certificate.
    /// - Throws: ``TLSError/Code/unsupported`` without ``TLSCapabilities/selfSignedIdentity``;
    ///   ``TLSError/Code/invalidConfiguration`` (from ``TLSBackendID/tlsKit``, the same on
    ///   every backend) when `validityDays` is not 1…36600, `commonName` is not 1 to 64
    ///   bytes, or a subject alternative name is neither a DNS name nor an IP address;
    ///   ``TLSError`` when the backend's library fails.
    public static func makeSelfSignedIdentity(
        commonName: String,
        subjectAlternativeNames: [String],
        validityDays: Int
    ) throws -> TLSIdentity {
        guard capabilities.contains(.selfSignedIdentity) else {
            throw TLSError(.unsupported, "makeSelfSignedIdentity is not supported by the \(id) backend", backend: id)
        }
        try TLSSelfSignedRequest.check(commonName: commonName, subjectAlternativeNames: subjectAlternativeNames,
                                       validityDays: validityDays)
        return try generateSelfSignedIdentity(
            commonName: commonName, subjectAlternativeNames: subjectAlternativeNames, validityDays: validityDays)
    }
}

/// The arguments of ``TLSBackend/makeSelfSignedIdentity(commonName:subjectAlternativeNames:validityDays:)``,
/// checked once for every backend before the backend's generator sees them.
enum TLSSelfSignedRequest {
    /// The longest validity accepted, in days (100 years of 366 days).
    static let maximumValidityDays = 100 * 366
    /// The longest common name, in UTF-8 bytes (X.520 `ub-common-name`).
    static let maximumCommonNameBytes = 64

    static func check(commonName: String, subjectAlternativeNames: [String], validityDays: Int) throws {
        func invalid(_ message: String) -> TLSError { TLSError(.invalidConfiguration, message, backend: .tlsKit) }
        guard (1...maximumValidityDays).contains(validityDays) else {
            throw invalid("validityDays must be between 1 and \(maximumValidityDays), got \(validityDays)")
        }
        guard (1...maximumCommonNameBytes).contains(commonName.utf8.count) else {
            throw invalid("the common name must be 1 to \(maximumCommonNameBytes) bytes long, got \(commonName.utf8.count)")
        }
        for name in subjectAlternativeNames where !TLSHostName.isValidServerName(name) {
            throw invalid("the subject alternative name \"\(TLSUntrustedText.escape(name))\" is neither a DNS name nor an IP address")
        }
    }
}

/// A backend's identity: what ``TLSError/backend``, ``TLSSession/backend`` and
/// ``TLSContext/backend`` compare, typed rather than a free `String`.
///
/// ```swift
/// if error.backend == .gnuTLS { … }
/// extension TLSBackendID { static let myTLS = TLSBackendID("MyTLS") }   // a third backend
/// ```
public struct TLSBackendID: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The display name, e.g. `"OpenSSL"`.
    public let name: String

    /// A backend identity; third-party backends declare theirs with this.
    public init(_ name: String) { self.name = name }

    /// Lets tests and logs write `"OpenSSL"` where an identity is expected.
    public init(stringLiteral name: String) { self.name = name }

    /// The OpenSSL 3 backend (`OpenSSLBackend`).
    public static let openSSL = TLSBackendID("OpenSSL")
    /// The GnuTLS 3 backend (`GnuTLSBackend`).
    public static let gnuTLS = TLSBackendID("GnuTLS")
    /// Checks TLSKit makes itself before any backend is involved (configuration rules).
    public static let tlsKit = TLSBackendID("TLSKit")

    public var description: String { name }
}

/// Which end of the handshake a connection plays.
public enum TLSRole: Sendable, Hashable {
    /// The connecting side (`SSL_set_connect_state`).
    case client
    /// The accepting side (`SSL_set_accept_state`).
    case server
}

