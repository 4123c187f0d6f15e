import Synchronization

/// A resumable TLS session, exported by a client after a handshake and given back to a
/// later connection (in this process or another one) to resume it.
///
/// Two sessions are equal when their ``bytes`` and ``backend`` are.
public struct TLSSession: Sendable, Hashable {
    /// The backend's own serialisation of the session (contains secrets: store it safely).
    public let bytes: [UInt8]
    /// The backend that produced it: a session resumes only on the same backend.
    public let backend: TLSBackendID
    /// The backend's decoded form of ``bytes``, made by the first connection that
    /// resumes this session and shared by every copy of this value.
    @_spi(TLSBackendImplementation) public let decoded = TLSDecodedSession()

    /// Rebuilds a session from bytes produced by ``bytes`` on `backend`.
    public init(bytes: [UInt8], backend: TLSBackendID) {
        self.bytes = bytes
        self.backend = backend
    }

    public static func == (lhs: TLSSession, rhs: TLSSession) -> Bool {
        lhs.bytes == rhs.bytes && lhs.backend == rhs.backend
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes)
        hasher.combine(backend)
    }
}

/// A key that protects session tickets a server issues (80 random bytes: a 16-byte name,
/// then key material). Give the same keys to every server that should accept each
/// other's tickets; rotate by putting a new key first and keeping the old ones after it
/// for as long as their tickets should still be accepted.
public struct TLSSessionTicketKey: Sendable, Hashable {
    /// The key bytes (80).
    public let bytes: [UInt8]

    /// Wraps existing key bytes (80).
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// A fresh random key from the system's cryptographic generator.
    public static func generate() -> TLSSessionTicketKey {
        var generator = SystemRandomNumberGenerator()
        return TLSSessionTicketKey(bytes: (0..<80).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }
}
