import Synchronization

/// A reusable TLS context: configuration loaded once (certificates, keys, trust store),
/// shared by every connection made from it, safe to use from many threads.
/// The `SSL_CTX` of OpenSSL, the credentials and priority cache of GnuTLS.
///
/// Made only by ``TLSBackend/makeContext(_:)``, which validates the configuration and
/// checks it against the backend's capabilities first.
public final class TLSContext: Sendable {
    /// The configuration the context was made from.
    public let configuration: TLSConfiguration
    /// The backend that made the context (its ``TLSBackend/capabilities`` and
    /// ``TLSBackend/certificateInfo(der:)`` are the ones connections use).
    public let backend: any TLSBackend.Type
    /// The backend's identity.
    public var backendID: TLSBackendID { backend.id }

    /// The backend's engine; a backend's own code reaches its engine through here.
    @_spi(TLSBackendImplementation) public let engine: any TLSContextEngine

    /// Internal on purpose: the only way in is ``TLSBackend/makeContext(_:)``.
    init(configuration: TLSConfiguration, backend: any TLSBackend.Type, engine: any TLSContextEngine) {
        self.configuration = configuration
        self.backend = backend
        self.engine = engine
    }

    /// Creates a connection (`SSL_new`). Attach a transport, set the role, then handshake.
    public func makeConnection() -> TLSConnection {
        TLSConnection(context: self)
    }

    /// Identities a ``TLSServerIdentitySelector`` chose, loaded by the backend once and
    /// kept (the 64 most recently loaded sets), so that a selector returning the same
    /// values for many connections costs one load.
    private let prepared = Mutex<(sets: [[TLSCredential]: any TLSPreparedCredentials], order: [[TLSCredential]])>(([:], []))
    private static let preparedLimit = 64

    /// The backend's loaded form of these identities, from the cache or loaded now.
    func preparedCredentials(_ credentials: [TLSCredential]) throws -> any TLSPreparedCredentials {
        if let known = prepared.withLock({ $0.sets[credentials] }) { return known }
        // Loaded outside the lock: two connections asking at once may both load; one wins.
        let loaded = try engine.prepareServerCredentials(credentials)
        return prepared.withLock { cache in
            if let known = cache.sets[credentials] { return known }
            if cache.order.count == Self.preparedLimit {
                cache.sets[cache.order.removeFirst()] = nil
            }
            cache.sets[credentials] = loaded
            cache.order.append(credentials)
            return loaded
        }
    }
}
