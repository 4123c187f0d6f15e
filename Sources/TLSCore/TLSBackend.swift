/// A TLS provider: OpenSSL or GnuTLS. Pick one with a package trait; use
/// `DefaultTLSBackend` from `TLSKit` to write code that does not name it.
///
/// A backend makes contexts (`SSL_CTX_new`), which make connections (`SSL_new`).
public protocol TLSBackend: Sendable {
    /// The backend's name: `"OpenSSL"` or `"GnuTLS"`.
    static var name: String { get }
    /// The version of the C library loaded at run time, e.g. `"OpenSSL 3.0.19 …"`.
    static var libraryVersion: String { get }
    /// What this backend can do beyond the common contract.
    static var capabilities: TLSCapabilities { get }

    /// Creates a context: loads certificates, keys and the trust store once.
    /// - Throws: ``TLSError`` when the configuration is invalid or cannot be loaded.
    static func makeContext(_ configuration: TLSConfiguration) throws -> TLSContext

    /// Parses a DER certificate: subject, issuer, SANs, validity, fingerprints.
    /// - Throws: ``TLSError/Code/badCertificate`` for bytes that are not a certificate.
    static func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo

    /// Generates a fresh key (ECDSA P-256) and a self-signed certificate for the given
    /// DNS names and IP addresses, valid from one hour ago for `validityDays` days.
    /// For demos and tests; production servers load a CA-issued certificate.
    static func makeSelfSignedIdentity(
        commonName: String,
        subjectAlternativeNames: [String],
        validityDays: Int
    ) throws -> TLSIdentity
}

/// Abilities a backend may or may not have. An option that needs a missing capability
/// is refused at context creation with ``TLSError/Code/unsupported``.
public struct TLSCapabilities: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// TLS 1.3 (RFC 8446).
    public static let tls13 = TLSCapabilities(rawValue: 1 << 0)
    /// ALPN (RFC 7301).
    public static let alpn = TLSCapabilities(rawValue: 1 << 1)
    /// Server Name Indication, sent and received (RFC 6066).
    public static let serverNameIndication = TLSCapabilities(rawValue: 1 << 2)
    /// Client certificates (mutual TLS).
    public static let mutualTLS = TLSCapabilities(rawValue: 1 << 3)
    /// Host-name verification of DNS and IP SANs.
    public static let hostnameVerification = TLSCapabilities(rawValue: 1 << 4)
    /// Generating a self-signed identity.
    public static let selfSignedIdentity = TLSCapabilities(rawValue: 1 << 5)
    /// ``TLSConfiguration/applicationProtocolSelector``.
    public static let alpnSelectionCallback = TLSCapabilities(rawValue: 1 << 6)
    /// ``TLSConfiguration/cipherSuites`` by IANA name.
    public static let cipherSuiteSelection = TLSCapabilities(rawValue: 1 << 7)
    /// ``TLSConfiguration/keyExchangeGroups`` by name, and ``TLSConnection/negotiatedGroup``.
    public static let groupSelection = TLSCapabilities(rawValue: 1 << 8)
    /// ``TLSConfiguration/keyLogger`` (`SSLKEYLOGFILE` lines).
    public static let keyLogging = TLSCapabilities(rawValue: 1 << 9)
    /// Session tickets and ``TLSSession`` export/import.
    public static let sessionResumption = TLSCapabilities(rawValue: 1 << 10)
    /// Several ``TLSConfiguration/sessionTicketKeys`` (rotation with old keys accepted).
    public static let multipleTicketKeys = TLSCapabilities(rawValue: 1 << 11)
    /// ``TLSConnection/exportKeyingMaterial(label:context:length:)`` and channel bindings.
    public static let keyingMaterialExporter = TLSCapabilities(rawValue: 1 << 12)
    /// ``TLSConnection/requestKeyUpdate(updatePeer:)`` (TLS 1.3 KeyUpdate).
    public static let keyUpdate = TLSCapabilities(rawValue: 1 << 13)
    /// OCSP stapling: ``TLSConfiguration/ocspResponse`` and ``TLSConfiguration/ocspStapling``.
    public static let ocspStapling = TLSCapabilities(rawValue: 1 << 14)

    /// Every capability with its display name, in a stable order.
    public static let all: [(TLSCapabilities, String)] = [
        (.tls13, "TLS 1.3"),
        (.alpn, "ALPN"),
        (.serverNameIndication, "SNI"),
        (.mutualTLS, "mutual TLS"),
        (.hostnameVerification, "host-name verification"),
        (.selfSignedIdentity, "self-signed identity"),
        (.alpnSelectionCallback, "ALPN selection callback"),
        (.cipherSuiteSelection, "cipher suites by IANA name"),
        (.groupSelection, "key-exchange groups by name"),
        (.keyLogging, "key logging (SSLKEYLOGFILE)"),
        (.sessionResumption, "session resumption"),
        (.multipleTicketKeys, "ticket key rotation"),
        (.keyingMaterialExporter, "keying-material exporter"),
        (.keyUpdate, "TLS 1.3 KeyUpdate"),
        (.ocspStapling, "OCSP stapling"),
    ]

    public var description: String {
        Self.all.filter { contains($0.0) }.map(\.1).joined(separator: ", ")
    }
}

/// Which end of the handshake a connection plays.
public enum TLSRole: Sendable, Hashable {
    /// The connecting side (`SSL_set_connect_state`).
    case client
    /// The accepting side (`SSL_set_accept_state`).
    case server
}

// MARK: - What a backend implements

/// The result of one call into the C library, already classified by the backend.
/// ``TLSConnection`` turns it into the contract's `Int32` result and error code.
package enum TLSEngineStatus {
    /// Handshake finished (value 1), or this many bytes were read/written, or
    /// close_notify was sent and flushed (value 1).
    case success(Int)
    /// The transport must deliver bytes before the call can progress.
    case wantRead
    /// The transport must take bytes before the call can progress.
    case wantWrite
    /// The peer's close_notify arrived.
    case closeNotify
    /// A fatal failure. The backend describes it as precisely as it can; the
    /// connection overrides it with `.syscall` / unexpected EOF when the transport
    /// recorded a failure or end-of-stream.
    case failure(TLSError)
}

/// A backend's context: built once from a configuration, shared by many connections,
/// safe to use from several threads.
package protocol TLSContextEngine: AnyObject, Sendable {
    /// Creates the backend session once the role and transport are known.
    /// `serverName` is the effective name for SNI and host-name checks (client role).
    func makeSession(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSSessionEngine
    /// Parses a DER certificate (the backend's `certificateInfo(der:)`).
    func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo
    /// The backend's capabilities (for the checks TLSConnection makes).
    var capabilities: TLSCapabilities { get }
    /// A digest computed by the backend's library.
    func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8]
}

/// The checks on the peer's leaf certificate that TLSKit makes itself, identically on
/// both backends, from inside each library's verification callback (so a failure still
/// fails the handshake and sends the alert): the RFC 6125 host-name rules and
/// public-key pinning. Chain building, signatures, validity times, purposes and CRLs
/// are the library's.
package struct TLSPeerPolicy: Sendable {
    /// The name the leaf must carry; nil when host names are not checked.
    package let hostname: String?
    /// Accepted SPKI SHA-256 digests; empty when not pinning.
    package let pins: Set<[UInt8]>
    /// True when pins replace chain verification.
    package let pinsOnly: Bool

    /// The policy for one session.
    package init(configuration: TLSConfiguration, role: TLSRole, serverName: String?) {
        let checkHost = role == .client && configuration.certificateVerification == .fullVerification
            && configuration.pinningMode == .inAdditionToChainVerification
        hostname = checkHost ? serverName : nil
        pins = Set(configuration.pinnedPublicKeys)
        pinsOnly = configuration.pinningMode == .insteadOfChainVerification
    }

    /// True when ``check(leafDER:sha256:)`` has anything to check.
    package var checksLeaf: Bool { hostname != nil || !pins.isEmpty }

    /// The leaf (DER, as the library received and parsed it) against the host name and
    /// the pins: nil when it passes, else the first failure and a reason to show.
    /// `sha256` is the backend's digest, used only when pinning.
    package func check(
        leafDER: UnsafeRawBufferPointer, sha256: (UnsafeRawBufferPointer) -> [UInt8]
    ) -> (failure: TLSError.VerificationFailure, reason: String)? {
        guard checksLeaf else { return nil }
        guard let leaf = TLSLeafIdentity(der: leafDER) else {
            return (.other, "the certificate's names and public key cannot be read (malformed DER)")
        }
        if let hostname, !TLSHostName.matches(hostname, leaf: leaf) {
            let names = leaf.dnsNames + leaf.ipAddresses
            return (.hostnameMismatch, "the certificate is not valid for \(hostname): it names "
                    + (names.isEmpty ? "CN=\(leaf.commonName ?? "")" : names.joined(separator: ", ")))
        }
        if !pins.isEmpty {
            let digest = sha256(UnsafeRawBufferPointer(rebasing: leafDER[leaf.subjectPublicKeyInfo]))
            if !pins.contains(digest) {
                return (.pinMismatch, "the peer's public key (SPKI SHA-256 \(digest.map { String(format2: $0) }.joined())) is not pinned")
            }
        }
        return nil
    }
}

/// A backend's session: one C-library session, driven one call at a time.
/// Implementations are thin: one C call per method, results classified, nothing else.
/// The state rules of the contract live once in ``TLSConnection``.
package protocol TLSSessionEngine: AnyObject {
    /// One handshake step (`SSL_do_handshake` / `gnutls_handshake`).
    func handshake() -> TLSEngineStatus
    /// One read (`SSL_read` / `gnutls_record_recv`); `.success(n)` with n ≥ 1.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSEngineStatus
    /// One write of at least one byte (may be partial); `.success(n)` with n ≥ 1.
    func write(_ bytes: UnsafeRawBufferPointer) -> TLSEngineStatus
    /// Sends close_notify, or flushes a pending one. Never called twice once it succeeded.
    func sendCloseNotify() -> TLSEngineStatus
    /// After a failed handshake step: sends the fatal `alert` unless the library has
    /// already sent a fatal alert of its own. Returns the alert the peer gets (the
    /// library's own when it sent one), nil when none could be sent.
    func sendFatalAlert(_ alert: TLSAlert) -> TLSAlert?

    /// Negotiated protocol version.
    var negotiatedVersion: TLSVersion? { get }
    /// Negotiated cipher suite, IANA name.
    var cipherSuite: String? { get }
    /// Negotiated ALPN protocol.
    var negotiatedApplicationProtocol: String? { get }
    /// The peer's certificate chain, leaf first, DER.
    var peerCertificateChain: [[UInt8]] { get }
    /// Server role: the SNI name the client sent.
    var requestedServerName: String? { get }

    /// The negotiated key-exchange group (capability ``TLSCapabilities/groupSelection``).
    var negotiatedGroup: TLSGroup? { get }
    /// True when the handshake resumed a session.
    var isSessionReused: Bool { get }
    /// Client role: the session to resume later, once the library has one (in TLS 1.3
    /// after the server's NewSessionTicket has been read).
    var exportedSession: [UInt8]? { get }
    /// Client role: resume this session (before the handshake). False if unusable.
    /// A backend that must decode ``TLSSession/bytes`` keeps the decoded form in
    /// ``TLSSession/decoded``, so that a session is decoded once, not per connection.
    func resume(from session: TLSSession) -> Bool
    /// RFC 5705 / RFC 8446 §7.5 exporter; nil when the library refuses.
    func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) -> [UInt8]?
    /// Sends a TLS 1.3 KeyUpdate (asking the peer to update too when `updatePeer`).
    func requestKeyUpdate(updatePeer: Bool) -> TLSEngineStatus
    /// The certificate this side presented (DER), if any.
    var localCertificate: [UInt8]? { get }
}

extension TLSSessionEngine {
    // Defaults for a backend without these capabilities; TLSConnection checks the
    // capability first and refuses loudly, so these are never relied upon silently.
    package var negotiatedGroup: TLSGroup? { nil }
    package var localCertificate: [UInt8]? { nil }
    package var isSessionReused: Bool { false }
    package var exportedSession: [UInt8]? { nil }
    package func resume(from session: TLSSession) -> Bool { false }
    package func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) -> [UInt8]? { nil }
    package func requestKeyUpdate(updatePeer: Bool) -> TLSEngineStatus {
        .failure(TLSError(.unsupported, "KeyUpdate is not supported by this backend", backend: "TLSKit"))
    }
}

/// A reusable TLS context: configuration loaded once (certificates, keys, trust store),
/// shared by every connection made from it, safe to use from many threads.
/// The `SSL_CTX` of OpenSSL, the credentials and priority cache of GnuTLS.
public final class TLSContext: Sendable {
    /// The configuration the context was made from.
    public let configuration: TLSConfiguration
    /// The backend that made the context.
    public let backendName: String
    package let engine: any TLSContextEngine

    /// Backends create contexts; applications call `Backend.makeContext(_:)`.
    package init(configuration: TLSConfiguration, backendName: String, engine: any TLSContextEngine) {
        self.configuration = configuration
        self.backendName = backendName
        self.engine = engine
    }

    /// Creates a connection (`SSL_new`). Attach a transport, set the role, then handshake.
    public func makeConnection() -> TLSConnection {
        TLSConnection(context: self)
    }
}
