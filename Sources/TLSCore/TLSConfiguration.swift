// Over 400 lines on purpose: every option of TLSConfiguration, each with its documentation,
// and the validation of those options next to them (file loading is in
// TLSDataSource+Loading.swift).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A TLS protocol version TLSKit can negotiate. Older versions are not offered.
public enum TLSVersion: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    /// TLS 1.2 (RFC 5246).
    case tls12 = 0x0303
    /// TLS 1.3 (RFC 8446).
    case tls13 = 0x0304

    public static func < (lhs: TLSVersion, rhs: TLSVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .tls12: return "TLSv1.2"
        case .tls13: return "TLSv1.3"
        }
    }
}

/// Where bytes of a certificate, chain or key come from.
public enum TLSDataSource: Sendable, Hashable {
    /// A file on disk, read when the context is created.
    case file(String)
    /// Bytes in memory (PEM text as UTF-8).
    case bytes([UInt8])

    /// PEM text held in a string.
    public static func pem(_ text: String) -> TLSDataSource { .bytes(Array(text.utf8)) }
}

/// The certificates a peer's chain is verified against.
public enum TLSTrustRoots: Sendable, Hashable {
    /// The operating system's trust store (on Debian `/etc/ssl/certs`).
    case system
    /// A PEM file holding one or more CA certificates.
    case caFile(String)
    /// A directory of CA certificates in the OpenSSL hashed-name layout (`c_rehash`).
    case caDirectory(String)
    /// CA certificates in memory, as PEM.
    case certificates([TLSDataSource])
}

/// How the peer's certificate is checked.
public enum TLSCertificateVerification: Sendable, Hashable {
    /// Verify the chain against ``TLSConfiguration/trustRoots`` and, on a client, the
    /// host name against ``TLSConfiguration/serverName``. The default.
    case fullVerification
    /// Verify the chain but not the host name. Only for peers identified some other way.
    case noHostnameVerification
    /// INSECURE: accept any certificate, from anyone. For debugging only; a man in the
    /// middle can read and change everything.
    case insecureNoVerification
}

/// Whether a server asks the client for a certificate.
public enum TLSClientAuthentication: Sendable, Hashable {
    /// Do not ask for a client certificate. The default.
    case none
    /// Ask for one; verify it if sent; continue if none is sent.
    case optional
    /// Ask for one and fail the handshake when it is missing or invalid.
    case required
}

/// Everything a ``TLSContext`` needs to know, as a plain value.
///
/// Start from ``makeClientConfiguration()`` or
/// ``makeServerConfiguration(certificateChain:privateKey:)``, which carry the secure
/// defaults, then change what you need:
///
/// ```swift
/// var config = TLSConfiguration.makeClientConfiguration()
/// config.serverName = "example.com"
/// config.applicationProtocols = ["h2", "http/1.1"]
/// let context = try DefaultTLSBackend.makeContext(config)
/// ```
///
/// A configuration is validated when the context is created; an invalid one is refused
/// with a ``TLSError`` of code ``TLSError/Code/invalidConfiguration`` (or a loading error),
/// never silently adjusted.
public struct TLSConfiguration: Sendable, Hashable {
    /// Our certificate followed by any intermediates (PEM). Required on a server; on a
    /// client it is presented when the server asks for one.
    public var certificateChain: TLSDataSource?
    /// The private key for the first certificate of ``certificateChain``: PEM (PKCS#8 or
    /// traditional RSA/EC, possibly encrypted) or DER (PKCS#8).
    public var privateKey: TLSDataSource?
    /// The passphrase of an encrypted ``privateKey``.
    public var privateKeyPassphrase: String?
    /// More certificates and keys offered with the primary one, e.g. an RSA and an ECDSA
    /// identity: the handshake picks the one the client's signature algorithms accept.
    public var additionalCredentials: [TLSCredential]
    /// Server role: identities chosen by the name the client sends in SNI. A client whose
    /// name matches none (or who sends none) gets the primary credentials.
    public var serverNameCredentials: [TLSServerNameCredentials]
    /// Certificate revocation lists (PEM or DER). When given, the peer's chain is checked
    /// against them: a listed certificate fails with ``TLSError/VerificationFailure/revoked``;
    /// a certificate whose issuer has no CRL here is not failed for that.
    public var certificateRevocationLists: [TLSDataSource]
    /// SHA-256 digests of SubjectPublicKeyInfo (32 bytes each, RFC 7469) the peer's leaf key
    /// must match. Empty: no pinning.
    public var pinnedPublicKeys: [[UInt8]]
    /// Whether pins are checked in addition to chain verification (the default) or
    /// instead of it.
    public var pinningMode: TLSPinningMode
    /// The roots the peer's chain is verified against. Default: the system store.
    public var trustRoots: TLSTrustRoots
    /// Whether a certificate in ``trustRoots`` that is not self-signed (an intermediate)
    /// may end a chain as its trust anchor. Default: false, on both backends: a chain
    /// must reach a self-signed root in ``trustRoots``, as with OpenSSL's and Python's
    /// defaults; a chain that stops at a trusted intermediate fails with
    /// ``TLSError/VerificationFailure/unknownIssuer``. True: any trusted certificate is
    /// an anchor (OpenSSL's `X509_V_FLAG_PARTIAL_CHAIN`, curl's default, GnuTLS's native
    /// behaviour). See `Docs/verification.md`.
    public var trustsPartialChains: Bool = false
    /// How the peer's certificate is checked. Default: full verification.
    public var certificateVerification: TLSCertificateVerification
    /// Server role: whether to request a client certificate. Default: ``TLSClientAuthentication/none``.
    public var clientAuthentication: TLSClientAuthentication
    /// Client role: the name sent in SNI and checked against the server's certificate.
    /// An IP address literal is checked against IP SANs and is not sent as SNI.
    /// Can be overridden per connection with ``TLSConnection/serverName``.
    public var serverName: String?
    /// The lowest version offered or accepted. Default: TLS 1.2.
    public var minimumTLSVersion: TLSVersion
    /// The highest version offered or accepted. Default: TLS 1.3.
    public var maximumTLSVersion: TLSVersion
    /// ALPN protocol names in preference order (client: offered; server: accepted, in
    /// the server's order of preference). Empty: ALPN not used.
    public var applicationProtocols: [String]
    /// Server role: chooses the ALPN protocol from the client's list instead of
    /// ``applicationProtocols`` (which may then be empty).
    public var applicationProtocolSelector: TLSApplicationProtocolSelector?
    /// Cipher suites by IANA name (``TLSCipherSuite/all``), in preference order, for TLS 1.2
    /// and 1.3 together. nil: the backend's secure defaults. An unknown name is refused.
    public var cipherSuites: [String]?
    /// Key-exchange groups by name (``TLSGroup/all``: `x25519`, `secp256r1`, …), in
    /// preference order. nil: the backend's defaults.
    public var keyExchangeGroups: [String]?
    /// Receives the session secrets in `SSLKEYLOGFILE` format. For debugging only.
    public var keyLogger: TLSKeyLogger?
    /// Server role: issue session tickets (TLS 1.3 tickets, TLS 1.2 RFC 5077 tickets).
    public var sessionTicketsEnabled: Bool
    /// Server role: the keys protecting tickets; the first encrypts, every one decrypts.
    /// Empty: a random key made when the context is created (tickets then resume only on
    /// that context).
    public var sessionTicketKeys: [TLSSessionTicketKey]
    /// Server role: a DER OCSP response stapled to the primary certificate.
    public var ocspResponse: [UInt8]?
    /// Client role: whether to ask for, or require, a stapled OCSP response.
    public var ocspStapling: TLSOCSPStapling
    /// A verification callback that judges the peer's certificate, possibly later (see
    /// ``TLSCustomVerification`` for what it replaces and what it does not). Every
    /// connection of the context starts with it (``TLSConnection/customVerification``
    /// overrides it per connection). Needs ``TLSCapabilities/customVerification``.
    public var customVerification: TLSCustomVerification?
    /// Server role: chooses the identity for each connection from the client's
    /// ClientHello, possibly later (see ``TLSServerIdentitySelector``). With a selector the
    /// configuration may have no identity of its own, as long as the selector never
    /// answers ``TLSServerIdentityChoice/defaultIdentity``. Needs
    /// ``TLSCapabilities/serverIdentitySelection``.
    public var serverIdentitySelector: TLSServerIdentitySelector?

    /// Creates a configuration with every field given. Prefer the `make…` factories.
    public init(
        certificateChain: TLSDataSource? = nil,
        privateKey: TLSDataSource? = nil,
        privateKeyPassphrase: String? = nil,
        additionalCredentials: [TLSCredential] = [],
        serverNameCredentials: [TLSServerNameCredentials] = [],
        certificateRevocationLists: [TLSDataSource] = [],
        pinnedPublicKeys: [[UInt8]] = [],
        pinningMode: TLSPinningMode = .inAdditionToChainVerification,
        trustRoots: TLSTrustRoots = .system,
        certificateVerification: TLSCertificateVerification = .fullVerification,
        clientAuthentication: TLSClientAuthentication = .none,
        serverName: String? = nil,
        minimumTLSVersion: TLSVersion = .tls12,
        maximumTLSVersion: TLSVersion = .tls13,
        applicationProtocols: [String] = [],
        applicationProtocolSelector: TLSApplicationProtocolSelector? = nil,
        cipherSuites: [String]? = nil,
        keyExchangeGroups: [String]? = nil,
        keyLogger: TLSKeyLogger? = nil,
        sessionTicketsEnabled: Bool = true,
        sessionTicketKeys: [TLSSessionTicketKey] = [],
        ocspResponse: [UInt8]? = nil,
        ocspStapling: TLSOCSPStapling = .none,
        customVerification: TLSCustomVerification? = nil,
        serverIdentitySelector: TLSServerIdentitySelector? = nil
    ) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.privateKeyPassphrase = privateKeyPassphrase
        self.additionalCredentials = additionalCredentials
        self.serverNameCredentials = serverNameCredentials
        self.certificateRevocationLists = certificateRevocationLists
        self.pinnedPublicKeys = pinnedPublicKeys
        self.pinningMode = pinningMode
        self.trustRoots = trustRoots
        self.certificateVerification = certificateVerification
        self.clientAuthentication = clientAuthentication
        self.serverName = serverName
        self.minimumTLSVersion = minimumTLSVersion
        self.maximumTLSVersion = maximumTLSVersion
        self.applicationProtocols = applicationProtocols
        self.applicationProtocolSelector = applicationProtocolSelector
        self.cipherSuites = cipherSuites
        self.keyExchangeGroups = keyExchangeGroups
        self.keyLogger = keyLogger
        self.sessionTicketsEnabled = sessionTicketsEnabled
        self.sessionTicketKeys = sessionTicketKeys
        self.ocspResponse = ocspResponse
        self.ocspStapling = ocspStapling
        self.customVerification = customVerification
        self.serverIdentitySelector = serverIdentitySelector
    }

    /// A client configuration with the secure defaults: system trust store, chain and
    /// host-name verification, TLS 1.2 minimum. Set ``serverName`` before connecting.
    public static func makeClientConfiguration() -> TLSConfiguration {
        TLSConfiguration()
    }

    /// A server configuration presenting the given certificate chain and key, TLS 1.2
    /// minimum, no client certificate requested.
    public static func makeServerConfiguration(
        certificateChain: TLSDataSource,
        privateKey: TLSDataSource
    ) -> TLSConfiguration {
        TLSConfiguration(certificateChain: certificateChain, privateKey: privateKey)
    }

    /// A server configuration presenting one credential (for example a PKCS#12 bundle).
    public static func makeServerConfiguration(credential: TLSCredential) -> TLSConfiguration {
        TLSConfiguration(additionalCredentials: [credential])
    }

    /// A server configuration presenting a generated or loaded ``TLSIdentity``.
    public static func makeServerConfiguration(identity: TLSIdentity) -> TLSConfiguration {
        makeServerConfiguration(
            certificateChain: .pem(identity.certificateChainPEM),
            privateKey: .pem(identity.privateKeyPEM)
        )
    }

    /// The one rule for a client's server name, in ``serverName``, on a connection, or
    /// in an integration's own option (TLSKitNIO's `serverHostname`): a DNS name or an IP
    /// address. Reported by TLSKit itself (``TLSBackendID/tlsKit``) wherever it is set.
    /// - Throws: ``TLSError`` with code ``TLSError/Code/invalidConfiguration`` naming the
    ///   name otherwise.
    public static func checkServerName(_ name: String) throws(TLSError) {
        guard TLSHostName.isValidServerName(name) else {
            throw TLSError(.invalidConfiguration, "serverName \"\(name)\" is neither a DNS name nor an IP address",
                           backend: .tlsKit)
        }
    }

    /// True when a client must know the peer's name: full verification with pins (if
    /// any) in addition to the chain. A connection started without one is refused; an
    /// integration that knows the peer's address may set that instead (TLSKitNIO does).
    public var needsServerName: Bool {
        certificateVerification == .fullVerification && pinningMode == .inAdditionToChainVerification
    }
}

/// A certificate with its private key, in one of the forms TLSKit loads.
public enum TLSCredential: Sendable, Hashable {
    /// A certificate chain (PEM with intermediates, or one DER certificate) and its key
    /// (PEM: PKCS#8 or traditional, encrypted when `passphrase` is given; or DER PKCS#8).
    case certificateChain(TLSDataSource, privateKey: TLSDataSource, passphrase: String? = nil)
    /// A PKCS#12 bundle (key, certificate and chain) and its password.
    case pkcs12(TLSDataSource, password: String)
}

/// Server identities for the clients that ask for one of these names in SNI.
public struct TLSServerNameCredentials: Sendable, Hashable {
    /// DNS names, matched case-insensitively; `*.example.com` matches one label.
    public var serverNames: [String]
    /// The identities offered to those clients (several key types may be given).
    public var credentials: [TLSCredential]

    /// Creates an entry.
    public init(serverNames: [String], credentials: [TLSCredential]) {
        self.serverNames = serverNames
        self.credentials = credentials
    }

}

/// How ``TLSConfiguration/pinnedPublicKeys`` combine with chain verification.
public enum TLSPinningMode: Sendable, Hashable {
    /// The chain must verify and the leaf key must be pinned.
    case inAdditionToChainVerification
    /// Only the pin counts: the chain is not verified against trust roots (for
    /// self-signed peers known by their key).
    case insteadOfChainVerification
}

/// A certificate chain and its private key, as PEM text.
public struct TLSIdentity: Sendable, Hashable {
    /// The leaf certificate followed by any intermediates, PEM.
    public var certificateChainPEM: String
    /// The private key, PEM (PKCS#8).
    public var privateKeyPEM: String

    /// Creates an identity from PEM text.
    public init(certificateChainPEM: String, privateKeyPEM: String) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
    }
}
