import Synchronization

/// A backend's decoded session, kept with a ``TLSSession`` (OpenSSL: an `SSL_SESSION`,
/// whose decoding parses the server's certificate: a third of a resumed handshake).
@_spi(TLSBackendImplementation) public final class TLSDecodedSession: Sendable {
    private let storage = Mutex<(any AnyObject & Sendable)?>(nil)

    @_spi(TLSBackendImplementation) public init() {}

    /// The decoded form of type `Decoded`, made by `decode` the first time.
    @_spi(TLSBackendImplementation) public func value<Decoded: AnyObject & Sendable>(
        as type: Decoded.Type, decode: () -> Decoded?
    ) -> Decoded? {
        storage.withLock { stored in
            if let existing = stored as? Decoded { return existing }
            let made = decode()
            if let made { stored = made }
            return made
        }
    }
}
