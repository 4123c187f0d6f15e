#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure reported by TLSKit: what went wrong, in which backend, and why.
///
/// `TLSError` is a struct with a stable ``code`` so that new cases can be added without
/// breaking callers. Compare codes, not messages: the ``message`` is the backend's own
/// text and differs between OpenSSL and GnuTLS.
///
/// ```swift
/// do { try context.makeConnection() ... }
/// catch let error as TLSError where error.code == .certificateVerificationFailed {
///     print(error.verificationFailure ?? .other)
/// }
/// ```
public struct TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable identifier for a kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The identifier's text, stable across releases (for logs and metrics).
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The connection has no transport attached (`SSL_accept` without a BIO).
        public static let noTransport = Code("noTransport")
        /// The handshake was started before ``TLSConnection/setConnectState()`` or
        /// ``TLSConnection/setAcceptState()``.
        public static let roleNotSet = Code("roleNotSet")
        /// The call does not fit the connection's state (for example a second transport,
        /// or changing the role after the handshake began).
        public static let invalidState = Code("invalidState")
        /// Application data was read or written before the handshake completed.
        public static let handshakeNotComplete = Code("handshakeNotComplete")
        /// `shutdown()` was called while the handshake is still in progress.
        public static let shutdownDuringHandshake = Code("shutdownDuringHandshake")
        /// `write` was called after this side sent close_notify.
        public static let alreadyShutDown = Code("alreadyShutDown")
        /// A `write` retry passed a different length than the call it resumes.
        public static let badWriteRetry = Code("badWriteRetry")
        /// The transport ended without the peer's close_notify.
        public static let unexpectedEOF = Code("unexpectedEOF")
        /// The peer closed the TLS session with close_notify (reported by the throwing
        /// helpers where the raw calls return 0 with ``TLSResultCode/zeroReturn``).
        public static let closedByPeer = Code("closedByPeer")
        /// A blocking helper gave up waiting for the peer.
        public static let timedOut = Code("timedOut")
        /// The peer sent a fatal alert; ``TLSError/alert`` names it.
        public static let alertReceived = Code("alertReceived")
        /// A protocol failure detected locally: no shared version or cipher, malformed
        /// or unexpected message, bad record MAC…; the matching alert was sent.
        public static let protocolFailure = Code("protocolFailure")
        /// The peer's certificate was rejected; ``TLSError/verificationFailure`` says why.
        public static let certificateVerificationFailed = Code("certificateVerificationFailed")
        /// The transport failed (`errno` in ``TLSError/errno``).
        public static let transportFailure = Code("transportFailure")
        /// The configuration is invalid (checked at context creation).
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A certificate could not be loaded (missing file, bad PEM, bad DER…).
        public static let badCertificate = Code("badCertificate")
        /// A private key could not be loaded (missing file, bad PEM, wrong passphrase…).
        public static let badPrivateKey = Code("badPrivateKey")
        /// An encrypted private key or PKCS#12 bundle could not be opened: the passphrase
        /// is wrong, or missing for an encrypted key.
        public static let badPassphrase = Code("badPassphrase")
        /// The private key does not belong to the certificate.
        public static let keyCertificateMismatch = Code("keyCertificateMismatch")
        /// The option or feature is not supported by this backend.
        public static let unsupported = Code("unsupported")
        /// The server's ``TLSServerIdentitySelector`` refused the handshake (the client got
        /// the alert it named), failed, or chose an identity that could not be used.
        public static let handshakeRefused = Code("handshakeRefused")
        /// The backend library failed in a way not covered above; the message is its own.
        public static let internalError = Code("internalError")
    }

    /// Why a certificate was rejected, with the same category on every backend.
    ///
    /// `Docs/verification.md` lists which native results of each library map to which case.
    public enum VerificationFailure: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// A certificate of the chain is past its notAfter date.
        case expired
        /// A certificate of the chain is before its notBefore date.
        case notYetValid
        /// The leaf is not valid for the requested host name or IP address.
        case hostnameMismatch
        /// No trusted root was reached: an issuer is missing from what the peer sent and
        /// from the trust roots (or, without ``TLSConfiguration/trustsPartialChains``, the
        /// chain ends at a trusted certificate that is not a self-signed root).
        case unknownIssuer
        /// The peer presented a lone self-signed certificate that is not trusted.
        case selfSigned
        /// A signature in the chain does not verify, or uses an algorithm or key too weak
        /// to be accepted.
        case badSignature
        /// A certificate that signed another one is not allowed to: it is not a CA
        /// (`basicConstraints CA:FALSE` or absent), its key usage lacks `keyCertSign`, or
        /// its path-length constraint is exceeded. Adding a root does not help: the chain
        /// itself is wrong.
        case invalidCA
        /// A name in a certificate is outside the names a CA of the chain is restricted
        /// to (its nameConstraints extension: permitted or excluded DNS names, IP ranges…).
        case nameConstraintsViolation
        /// The certificate is not meant for this use (extended key usage).
        case invalidPurpose
        /// A certificate of the chain is listed in a given CRL.
        case revoked
        /// The leaf's public key matches none of ``TLSConfiguration/pinnedPublicKeys``.
        case pinMismatch
        /// No certificate was presented although one was required.
        case noCertificate
        /// Any other reason; ``TLSError/message`` keeps the backend's own text.
        case other
        public var description: String { rawValue }
    }

    /// The stable kind of failure.
    public var code: Code
    /// A human-readable explanation, usually the backend library's own text. Text from
    /// the peer in it (certificate names…) is escaped by ``TLSUntrustedText``: no control
    /// character reaches a log or a terminal.
    public var message: String
    /// The backend that produced the error (``TLSBackendID/openSSL``, ``TLSBackendID/gnuTLS``,
    /// or ``TLSBackendID/tlsKit`` for checks made before any backend is involved).
    public var backend: TLSBackendID
    /// For ``Code/certificateVerificationFailed``: the category of the rejection.
    public var verificationFailure: VerificationFailure?
    /// For alert-related failures: the TLS alert received or sent.
    public var alert: TLSAlert?
    /// For ``Code/transportFailure``: the `errno` of the failed transport call.
    public var errno: Int32?

    /// Creates an error. Backends and TLSKit create these; applications usually only read them.
    public init(
        _ code: Code,
        _ message: String,
        backend: TLSBackendID,
        verificationFailure: VerificationFailure? = nil,
        alert: TLSAlert? = nil,
        errno: Int32? = nil
    ) {
        self.code = code
        self.message = TLSUntrustedText.escape(message)
        self.backend = backend
        self.verificationFailure = verificationFailure
        self.alert = alert
        self.errno = errno
    }

    /// Errors are equal when their codes are (as swift-certificates' errors are): the
    /// message is the backend's own text and differs between libraries and versions.
    public static func == (lhs: TLSError, rhs: TLSError) -> Bool { lhs.code == rhs.code }

    /// Hashes the code only, consistent with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        var text = "TLSError(\(backend)) \(code)"
        if let verificationFailure { text += " [\(verificationFailure)]" }
        if let alert { text += " [alert \(alert)]" }
        if let errno { text += " [errno \(errno): \(String(cString: strerror(errno)))]" }
        return text + ": " + TLSUntrustedText.escape(message)
    }
}

/// A TLS alert description (RFC 8446 §6), with its registered name.
public struct TLSAlert: Sendable, Hashable, CustomStringConvertible {
    /// The alert's numeric code on the wire.
    public var rawValue: UInt8
    /// Creates an alert from its wire code.
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public static let closeNotify = TLSAlert(0)
    public static let unexpectedMessage = TLSAlert(10)
    public static let badRecordMAC = TLSAlert(20)
    public static let recordOverflow = TLSAlert(22)
    public static let handshakeFailure = TLSAlert(40)
    public static let badCertificate = TLSAlert(42)
    public static let unsupportedCertificate = TLSAlert(43)
    public static let certificateRevoked = TLSAlert(44)
    public static let certificateExpired = TLSAlert(45)
    public static let certificateUnknown = TLSAlert(46)
    public static let illegalParameter = TLSAlert(47)
    public static let unknownCA = TLSAlert(48)
    public static let accessDenied = TLSAlert(49)
    public static let decodeError = TLSAlert(50)
    public static let decryptError = TLSAlert(51)
    public static let protocolVersion = TLSAlert(70)
    public static let insufficientSecurity = TLSAlert(71)
    public static let internalError = TLSAlert(80)
    public static let inappropriateFallback = TLSAlert(86)
    public static let userCanceled = TLSAlert(90)
    /// no_renegotiation (100): a refused renegotiation (RFC 5246 §7.2.2), a warning.
    public static let noRenegotiation = TLSAlert(100)
    public static let missingExtension = TLSAlert(109)
    public static let unsupportedExtension = TLSAlert(110)
    public static let unrecognizedName = TLSAlert(112)
    public static let badCertificateStatusResponse = TLSAlert(113)
    public static let unknownPSKIdentity = TLSAlert(115)
    public static let certificateRequired = TLSAlert(116)
    public static let noApplicationProtocol = TLSAlert(120)

    /// The registered name, such as `unknown_ca`.
    public var name: String {
        switch rawValue {
        case 0: return "close_notify"
        case 10: return "unexpected_message"
        case 20: return "bad_record_mac"
        case 22: return "record_overflow"
        case 40: return "handshake_failure"
        case 42: return "bad_certificate"
        case 43: return "unsupported_certificate"
        case 44: return "certificate_revoked"
        case 45: return "certificate_expired"
        case 46: return "certificate_unknown"
        case 47: return "illegal_parameter"
        case 48: return "unknown_ca"
        case 49: return "access_denied"
        case 50: return "decode_error"
        case 51: return "decrypt_error"
        case 70: return "protocol_version"
        case 71: return "insufficient_security"
        case 80: return "internal_error"
        case 86: return "inappropriate_fallback"
        case 90: return "user_canceled"
        case 100: return "no_renegotiation"
        case 109: return "missing_extension"
        case 110: return "unsupported_extension"
        case 112: return "unrecognized_name"
        case 113: return "bad_certificate_status_response"
        case 115: return "unknown_psk_identity"
        case 116: return "certificate_required"
        case 120: return "no_application_protocol"
        default: return "alert_\(rawValue)"
        }
    }

    public var description: String { name }
}

extension TLSError.VerificationFailure {
    /// The fatal alert a verifier sends for this failure, identical on every backend
    /// (OpenSSL's `ssl_x509err2alert` choices).
    public var alert: TLSAlert {
        switch self {
        case .expired: return .certificateExpired
        case .notYetValid: return .badCertificate
        case .unknownIssuer, .selfSigned: return .unknownCA
        case .revoked: return .certificateRevoked
        case .badSignature: return .decryptError
        case .invalidPurpose: return .unsupportedCertificate
        case .noCertificate: return .certificateRequired
        case .invalidCA, .nameConstraintsViolation, .hostnameMismatch, .pinMismatch, .other: return .badCertificate
        }
    }
}
