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
}
