/// Whether a client asks for, or insists on, a stapled OCSP response (RFC 6066 §8).
public enum TLSOCSPStapling: Sendable, Hashable {
    /// Do not ask.
    case none
    /// Ask, and verify the staple if the server sends one (a "revoked" staple fails).
    case request
    /// Ask, and fail the handshake unless a valid "good" staple for the leaf is sent.
    case require
}
