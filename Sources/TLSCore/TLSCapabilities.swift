/// Abilities a backend may or may not have. An option that needs a missing capability
/// is refused with ``TLSError/Code/unsupported``, naming the option and the backend: at
/// context creation (``TLSBackend/makeContext(_:)``) for configuration options, at the
/// first handshake step for per-connection settings, and on the call itself for
/// connection features and ``TLSBackend/makeSelfSignedIdentity(commonName:subjectAlternativeNames:validityDays:)``.
public struct TLSCapabilities: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// TLS 1.3 (RFC 8446). Needed by ``TLSConfiguration/minimumTLSVersion`` `.tls13`; a
    /// range that also allows TLS 1.2 (the default) is honoured without it, in TLS 1.2.
    public static let tls13 = TLSCapabilities(rawValue: 1 << 0)
    /// ALPN (RFC 7301): ``TLSConfiguration/applicationProtocols``.
    public static let alpn = TLSCapabilities(rawValue: 1 << 1)
    /// Server Name Indication, sent and received (RFC 6066): a client's DNS
    /// ``TLSConfiguration/serverName`` (or ``TLSConnection/serverName``) and a server's
    /// ``TLSConfiguration/serverNameCredentials``.
    public static let serverNameIndication = TLSCapabilities(rawValue: 1 << 2)
    /// Client certificates (mutual TLS): a server's ``TLSConfiguration/clientAuthentication``
    /// other than `.none`, and a client presenting a certificate.
    public static let mutualTLS = TLSCapabilities(rawValue: 1 << 3)
    /// Generating a self-signed identity
    /// (``TLSBackend/makeSelfSignedIdentity(commonName:subjectAlternativeNames:validityDays:)``).
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
    /// ``TLSCustomVerification``: a verification callback that may answer later, the
    /// handshake returning ``TLSResultCode/wantRetryVerify`` meanwhile.
    public static let customVerification = TLSCapabilities(rawValue: 1 << 15)
    /// ``TLSServerIdentitySelector``: the server's identity chosen per ClientHello, possibly
    /// later, the handshake returning ``TLSResultCode/wantClientHello`` meanwhile (the
    /// backend implements `prepareServerCredentials` and `useServerCredentials`).
    public static let serverIdentitySelection = TLSCapabilities(rawValue: 1 << 16)

    /// Every capability with its display name, in a stable order.
    public static let all: [(TLSCapabilities, String)] = [
        (.tls13, "TLS 1.3"),
        (.alpn, "ALPN"),
        (.serverNameIndication, "SNI"),
        (.mutualTLS, "mutual TLS"),
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
        (.customVerification, "custom verification callback"),
        (.serverIdentitySelection, "server identity selection per ClientHello"),
    ]

    /// The display names of the capabilities in the set, comma-separated.
    public var description: String {
        Self.all.filter { contains($0.0) }.map(\.1).joined(separator: ", ")
    }
}
