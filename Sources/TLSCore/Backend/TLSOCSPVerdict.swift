/// What a backend's library found in the OCSP response a server stapled (RFC 6066 §8):
/// the only part of OCSP stapling that needs the library (parsing, the signature, the
/// certificate ID, the validity window). What a client does with it is
/// ``TLSOCSPRefusal/judge(_:stapling:)``, one rule for every backend.
@_spi(TLSBackendImplementation)
public enum TLSOCSPVerdict: Sendable, Hashable {
    /// Signed by the issuer (or a responder it or the trust roots vouch for), current
    /// within five minutes, about the leaf, and "good".
    case good
    /// As ``good``, but the leaf is "revoked".
    case revoked
    /// Not usable, and why: not a DER OCSP response, not successful, not verified, not
    /// about the leaf, out of date, or the leaf's status unknown.
    case invalid(String)
}

/// A client's refusal of the server's OCSP staple (or of its absence): the verification
/// category, the reason, and the alert, the same on every backend. A backend records it
/// and fails the handshake as for any certificate verification failure.
@_spi(TLSBackendImplementation)
public struct TLSOCSPRefusal: Sendable, Hashable {
    /// The verification category: ``TLSError/VerificationFailure/revoked`` for a revoked
    /// leaf, ``TLSError/VerificationFailure/other`` otherwise.
    public let failure: TLSError.VerificationFailure
    /// Why, for ``TLSError/message`` (after "certificate verification failed: ").
    public let reason: String
    /// The alert to send: always bad_certificate_status_response (what OpenSSL's client
    /// sends when its status callback refuses the staple).
    public var alert: TLSAlert { .badCertificateStatusResponse }

    /// The one rule for a client that asked for a staple (`stapling` is not `.none`):
    /// `staple` is the library's verdict on the response, nil when the server sent none.
    /// Returns nil to go on with the handshake.
    public static func judge(_ staple: TLSOCSPVerdict?, stapling: TLSOCSPStapling) -> TLSOCSPRefusal? {
        switch (staple, stapling) {
        case (_, .none), (.good, _), (nil, .request):
            return nil
        case (nil, .require):
            return TLSOCSPRefusal(failure: .other, reason: "the server sent no OCSP staple, and one is required")
        case (.revoked, _):
            return TLSOCSPRefusal(failure: .revoked, reason: "the stapled OCSP response says the certificate is revoked")
        case (.invalid(let why), _):
            return TLSOCSPRefusal(failure: .other, reason: "the stapled OCSP response is not acceptable: \(why)")
        }
    }
}
