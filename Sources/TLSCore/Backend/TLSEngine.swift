// The backend-implementation SPI: what a backend implements, and what the core
// guarantees around each call. A backend in another package depends on the TLSCore
// product and imports it with `@_spi(TLSBackendImplementation) import TLSCore`; the SPI's
// types and helpers are in this folder (five members stay on their types: see
// TLSPublicTypes+Backend.swift). Docs/writing-a-backend.md walks through it;
// Backends/Fake (FakeTLS) is a complete backend in a package of its own written only
// against it.
//
// What the core guarantees (so that a backend never re-checks it):
// - `makeContextEngine(_:)` sees a configuration already validated
//   (`TLSConfiguration.validate()`) and already checked against the backend's static
//   `capabilities`: an option needing a missing capability never reaches the backend.
// - `makeConnectionEngine` is called at most once per connection, at the first handshake step,
//   when the role and transport are known; the server has an identity; a client that
//   verifies host names has a valid `serverName`.
// - Engine calls are made from one thread at a time, never after a fatal result, never
//   `handshake()` after success, never `read`/`write`/`sendCloseNotify` before success,
//   never `sendCloseNotify()` again once it succeeded, never a zero-length read or write.
// - Before each call the transport's failure record is reset; after it the core reads
//   that record (a transport errno becomes `.syscall`, an end-of-stream becomes
//   "unexpected EOF") and the wire reader's verdict (a malformed record becomes
//   `protocolFailure` with the fatal alert, sent through `sendFatalAlert`). A backend
//   only classifies its library's own result.
// - The core owns the `Int32` results, `error(for:)`, sticky fatal state, the
//   close_notify-once rule, all-or-nothing writes and their retry check, capability
//   checks on optional features, and every precondition message.

/// The result of one call into the C library, already classified by the backend.
/// ``TLSConnection`` turns it into the contract's `Int32` result and result code.
@_spi(TLSBackendImplementation)
public enum TLSEngineStatus {
    /// Handshake finished (value 1), or this many bytes were read/written, or
    /// close_notify was sent and flushed (value 1).
    case success(Int)
    /// The transport must deliver bytes before the call can progress.
    case wantRead
    /// The transport must take bytes before the call can progress.
    case wantWrite
    /// The peer's close_notify arrived.
    case closeNotify
    /// The handshake is suspended until the ``TLSCustomVerifier`` installed with
    /// ``TLSConnectionEngine/install(customVerifier:)`` has its answer (the verifier said
    /// ``TLSCustomVerifier/Outcome/pending``). The core calls `handshake()` again once it has.
    case wantRetryVerify
    /// A fatal failure. The backend describes it as precisely as it can; the
    /// connection overrides it with `.syscall` / unexpected EOF when the transport
    /// recorded a failure or end-of-stream.
    case failure(TLSError)
}

/// A backend's context: built once from a configuration, shared by many connections,
/// safe to use from several threads. Capabilities and certificate parsing are the
/// backend type's (``TLSBackend/capabilities``, ``TLSBackend/certificateInfo(der:)``),
/// not the engine's: one source of truth.
@_spi(TLSBackendImplementation)
public protocol TLSContextEngine: AnyObject, Sendable {
    /// Creates the backend's connection engine once the role and transport are known.
    /// `serverName` is the effective name for SNI and host-name checks (client role),
    /// already checked by the core. Throwing fails the handshake with that error.
    func makeConnectionEngine(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSConnectionEngine
    /// A digest computed by the backend's library (for `tls-server-end-point`).
    func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8]
    /// Capability ``TLSCapabilities/serverIdentitySelection``: loads server identities
    /// (several key types may be given) into the library's form, once; the core keeps
    /// the result per context and hands it to ``TLSConnectionEngine/useServerCredentials(_:)``
    /// of any connection of this context. Throws the loading errors
    /// ``TLSBackend/makeContext(_:)`` would.
    func prepareServerCredentials(_ credentials: [TLSCredential]) throws -> any TLSPreparedCredentials
}

/// Server identities loaded by a backend (an `SSL_CTX`, a `gnutls_certificate_credentials_t`),
/// shared by the connections that use them: thread-safe, immutable once made.
@_spi(TLSBackendImplementation)
public protocol TLSPreparedCredentials: AnyObject, Sendable {}

@_spi(TLSBackendImplementation)
extension TLSContextEngine {
    // The default of a backend without ``TLSCapabilities/serverIdentitySelection``: the
    // core checks the capability first, so this is never reached silently.
    public func prepareServerCredentials(_ credentials: [TLSCredential]) throws -> any TLSPreparedCredentials {
        throw TLSError(.unsupported, "serverIdentitySelector is not supported by this backend", backend: .tlsKit)
    }
}

/// A backend's live connection: one C-library session (`SSL`, `gnutls_session_t`),
/// driven one call at a time. Not to be confused with ``TLSSession``, the resumable
/// session a client stores. Implementations are thin: one C call per method, results
/// classified, nothing else. The state rules of the contract live once in ``TLSConnection``.
@_spi(TLSBackendImplementation)
public protocol TLSConnectionEngine: AnyObject {
    /// One handshake step (`SSL_do_handshake` / `gnutls_handshake`).
    func handshake() -> TLSEngineStatus
    /// One read (`SSL_read` / `gnutls_record_recv`); `.success(n)` with n ≥ 1.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSEngineStatus
    /// One write of at least one byte (may be partial); `.success(n)` with n ≥ 1.
    func write(_ bytes: UnsafeRawBufferPointer) -> TLSEngineStatus
    /// Sends close_notify, or flushes a pending one. Never called twice once it succeeded.
    func sendCloseNotify() -> TLSEngineStatus
    /// After a failed call (during the handshake, or a wire-reader violation at any time):
    /// sends the fatal `alert` unless the library has
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
    /// Capability ``TLSCapabilities/customVerification``: called once, before the first
    /// `handshake()`, when the connection has a ``TLSCustomVerification``. From then on the
    /// backend's verification callback computes its own verdict without the host name
    /// (``TLSPeerPolicy/withoutHostname``), asks `customVerifier.evaluate(…)` and follows
    /// the outcome; `.pending` suspends the library's handshake and makes `handshake()`
    /// return ``TLSEngineStatus/wantRetryVerify``.
    func install(customVerifier: TLSCustomVerifier)
    /// Capability ``TLSCapabilities/serverIdentitySelection``, server role: present these
    /// identities (made by this context's ``TLSContextEngine/prepareServerCredentials(_:)``)
    /// instead of the context's. Called at most once, after the engine is made and before
    /// the library has read a byte (the core holds the ClientHello back until then).
    func useServerCredentials(_ credentials: any TLSPreparedCredentials) throws
}

@_spi(TLSBackendImplementation)
extension TLSConnectionEngine {
    // Defaults for a backend without these capabilities; TLSConnection checks the
    // capability first and refuses loudly, so these are never relied upon silently.
    public var negotiatedGroup: TLSGroup? { nil }
    public var localCertificate: [UInt8]? { nil }
    public func install(customVerifier: TLSCustomVerifier) {}
    public func useServerCredentials(_ credentials: any TLSPreparedCredentials) throws {
        throw TLSError(.unsupported, "serverIdentitySelector is not supported by this backend", backend: .tlsKit)
    }
    public var isSessionReused: Bool { false }
    public var exportedSession: [UInt8]? { nil }
    public func resume(from session: TLSSession) -> Bool { false }
    public func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) -> [UInt8]? { nil }
    public func requestKeyUpdate(updatePeer: Bool) -> TLSEngineStatus {
        .failure(TLSError(.unsupported, "KeyUpdate is not supported by this backend", backend: .tlsKit))
    }
}
