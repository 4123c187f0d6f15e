/// How the peer's identity was established by a completed handshake.
public enum TLSPeerVerification: Sendable, Hashable, CustomStringConvertible {
    /// The chain was verified against the trust roots, and the host name matched.
    case verified
    /// The chain was verified; the host name was not checked (explicitly configured).
    case verifiedWithoutHostname
    /// Nothing was verified: ``TLSCertificateVerification/insecureNoVerification``.
    case notVerified
    /// Server role: no client certificate was requested, or the optional one was not sent.
    case noPeerCertificate
    /// The leaf's public key matched a pin; the chain was not verified
    /// (``TLSPinningMode/insteadOfChainVerification``).
    case pinnedPublicKey
    /// A ``TLSCustomVerification`` callback accepted the peer's certificate (whatever
    /// TLSKit's own chain verification said); `hostnameVerified`: TLSKit also checked the
    /// host name afterwards (client with ``TLSCertificateVerification/fullVerification``).
    case customVerification(hostnameVerified: Bool)

    public var description: String {
        switch self {
        case .verified: return "verified (chain and host name)"
        case .verifiedWithoutHostname: return "verified (chain only, host name not checked)"
        case .notVerified: return "NOT verified (insecureNoVerification)"
        case .noPeerCertificate: return "no peer certificate"
        case .pinnedPublicKey: return "public key pinned (chain not verified)"
        case .customVerification(let hostnameVerified):
            return "accepted by the custom verification callback" + (hostnameVerified ? " (host name verified)" : "")
        }
    }
}
