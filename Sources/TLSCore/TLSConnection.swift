#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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

    public var description: String {
        switch self {
        case .verified: return "verified (chain and host name)"
        case .verifiedWithoutHostname: return "verified (chain only, host name not checked)"
        case .notVerified: return "NOT verified (insecureNoVerification)"
        case .noPeerCertificate: return "no peer certificate"
        case .pinnedPublicKey: return "public key pinned (chain not verified)"
        }
    }
}

/// One TLS connection: the `SSL` object of OpenSSL, with the same call contract.
///
/// Attach a transport (``setTransport(_:)``), then call ``connect()`` or ``accept()``
/// (or set the role and call ``doHandshake()``) until it returns 1, then ``read(into:)``,
/// ``write(_:)`` and ``shutdown()``. Every call returns an `Int32` exactly as the
/// OpenSSL manual says, and ``error(for:)`` explains a result that is not positive:
///
/// | result | meaning |
/// |---|---|
/// | 1 (handshake) / n > 0 (read, write) | done |
/// | 0 | the peer closed cleanly (``TLSErrorCode/zeroReturn``), or — for `read` — the peer vanished without close_notify (``TLSErrorCode/ssl``, unexpected EOF); for `shutdown`, our close_notify is sent and the peer's not yet seen |
/// | -1 | ``TLSErrorCode/wantRead`` / ``TLSErrorCode/wantWrite``: call again once the transport can progress; ``TLSErrorCode/ssl`` / ``TLSErrorCode/syscall``: failure, see ``lastError`` |
///
/// The rules are the same for every backend; they are written here once and the
/// backends only translate single calls onto their C library.
///
/// A connection is not thread-safe: use it from one thread at a time.
public final class TLSConnection {
    /// The context the connection was made from.
    public let context: TLSContext

    private enum Phase {
        case idle
        case handshaking
        case established
        /// The peer sent close_notify before the handshake completed.
        case closedDuringHandshake
    }

    private var transport: TLSTransportIO?
    private var engine: (any TLSSessionEngine)?
    private var phase = Phase.idle
    private var lastCode = TLSErrorCode.none
    private var fatalCode: TLSErrorCode?
    private var closeNotifySent = false
    private var closeNotifyStarted = false
    private var closeNotifyReceived = false
    private var pendingWrite: (length: Int, done: Int)?
    private var pendingSession: TLSSession?

    /// The role set by ``setConnectState()`` / ``setAcceptState()`` (or by ``connect()`` / ``accept()``).
    public private(set) var role: TLSRole?

    /// The error behind the last `.ssl` or `.syscall` result. After a fatal failure it
    /// keeps the first failure's error for the life of the connection.
    public private(set) var lastError: TLSError?

    /// Client role: the host name for SNI and verification, overriding
    /// ``TLSConfiguration/serverName`` for this connection. Set it before the handshake.
    public var serverName: String?

    init(context: TLSContext) {
        self.context = context
    }

    private var backendName: String { context.backendName }

    // MARK: - Set-up

    /// Attaches the transport (`SSL_set_fd` / `SSL_set_bio`). Only once per connection.
    /// - Throws: ``TLSError/Code/invalidState`` if a transport is already attached.
    public func setTransport(_ transport: TLSTransport) throws {
        guard self.transport == nil else {
            throw TLSError(.invalidState, "a transport is already attached to this connection", backend: backendName)
        }
        self.transport = transport.io
    }

    /// Makes this connection the client (`SSL_set_connect_state`).
    /// - Throws: ``TLSError/Code/invalidState`` once the handshake has begun with another role.
    public func setConnectState() throws { try setRole(.client) }

    /// Makes this connection the server (`SSL_set_accept_state`).
    /// - Throws: ``TLSError/Code/invalidState`` once the handshake has begun with another role.
    public func setAcceptState() throws { try setRole(.server) }

    private func setRole(_ newRole: TLSRole) throws {
        if engine != nil, role != newRole {
            throw TLSError(.invalidState, "the role cannot change once the handshake has begun", backend: backendName)
        }
        role = newRole
    }

    // MARK: - Handshake

    /// Starts or resumes the client handshake (`SSL_connect`). Sets the client role if
    /// no role is set yet.
    /// - Returns: 1 done; 0 the server closed cleanly; -1 see ``error(for:)``.
    public func connect() -> Int32 {
        if role == nil { role = .client }
        guard role == .client else {
            return misuse(.invalidState, "connect() on a connection in accept state")
        }
        return doHandshake()
    }

    /// Starts or resumes the server handshake (`SSL_accept`). Sets the server role if
    /// no role is set yet.
    /// - Returns: 1 done; 0 the client closed cleanly; -1 see ``error(for:)``.
    public func accept() -> Int32 {
        if role == nil { role = .server }
        guard role == .server else {
            return misuse(.invalidState, "accept() on a connection in connect state")
        }
        return doHandshake()
    }

    /// Starts or resumes the handshake in the role already set (`SSL_do_handshake`).
    /// Once it has returned 1, further calls return 1 and send nothing.
    /// - Returns: 1 done; 0 the peer closed cleanly; -1 see ``error(for:)``.
    public func doHandshake() -> Int32 {
        if let fatalCode { return repeatFatal(fatalCode) }
        switch phase {
        case .established: return succeed(1)
        case .closedDuringHandshake: return closedCleanly()
        case .idle, .handshaking: break
        }
        guard let role else {
            return misuse(.roleNotSet, "the handshake needs a role: call setConnectState() or setAcceptState() first")
        }
        guard let transport else {
            return misuse(.noTransport, "no transport is attached: call setTransport(_:) before the handshake")
        }
        guard let engine = engine ?? startSession(role: role, transport: transport) else { return -1 }
        phase = .handshaking
        transport.resetStatus()
        transport.wire.role = role
        let status = engine.handshake()
        if case .success = status {
            phase = .established
            transport.wire.handshakeCompleted(version: engine.negotiatedVersion)
            return succeed(1)
        }
        if let result = wireFailure(engine: engine, transport: transport) { return result }
        switch status {
        case .success: return succeed(1)
        case .wantRead: return want(.wantRead)
        case .wantWrite: return want(.wantWrite)
        case .closeNotify:
            phase = .closedDuringHandshake
            return closedCleanly()
        case .failure(let error):
            // A close_notify can arrive unprotected before any handshake message (the
            // very first record): OpenSSL 3.0 calls that "unexpected message". It is
            // still the peer's controlled shutdown: 0, as when it arrives later.
            if let alert = transport.lastPlaintextAlert, alert.description == TLSAlert.closeNotify.rawValue {
                phase = .closedDuringHandshake
                return closedCleanly()
            }
            // A fatal alert the peer could still send unprotected is the peer's word,
            // even where a library calls it an unexpected message (OpenSSL's server
            // before the ClientHello): -1 alertReceived, nothing sent back.
            if let alert = transport.lastPlaintextAlert, alert.level == 2, error.code == .protocolFailure {
                let received = TLSAlert(alert.description)
                return fail(TLSError(.alertReceived, "the peer sent the fatal alert \(received) (unprotected); backend said: \(error.message)",
                                     backend: backendName, alert: received), transport: transport, result: -1)
            }
            // Every protocol failure we detect sends a fatal alert, so the peer never
            // waits: the library's own, else unexpected_message (OpenSSL sends none for
            // bytes that are not TLS at all; GnuTLS none for errors without an alert).
            var error = error
            if error.code == .protocolFailure, error.alert == nil, transport.failureErrno == nil,
               !transport.reachedEndOfStream, let sent = engine.sendFatalAlert(.unexpectedMessage) {
                error = TLSError(.protocolFailure, error.message + " (alert \(sent) sent)", backend: error.backend, alert: sent)
            }
            return fail(error, transport: transport, result: -1)
        }
    }

    /// Bytes that can never form a valid record or message, or a plaintext alert where
    /// a protected one is required: the same verdict on every backend, whether the
    /// library noticed (and which alert it picked) or is still waiting for more bytes.
    /// -1 `.ssl` ``TLSError/Code/protocolFailure`` and the wire reader's fatal alert
    /// (the library's own if it already sent one); nil when the wire is clean.
    private func wireFailure(engine: any TLSSessionEngine, transport: TLSTransportIO) -> Int32? {
        guard let violation = transport.wire.violation, transport.failureErrno == nil else { return nil }
        let sent = engine.sendFatalAlert(violation.alert)
        return fail(TLSError(.protocolFailure, "the peer sent \(violation.reason)" + (sent.map { " (alert \($0) sent)" } ?? ""),
                             backend: backendName, alert: sent ?? violation.alert),
                    transport: transport, result: -1)
    }

    private func startSession(role: TLSRole, transport: TLSTransportIO) -> (any TLSSessionEngine)? {
        let configuration = context.configuration
        let name = role == .client ? (serverName ?? configuration.serverName) : nil
        if let name, let error = TLSConfiguration.serverNameError(name) {
            lastCode = .ssl
            lastError = error
            return nil
        }
        // Checked here once for every backend; nothing has been sent yet.
        if role == .server && !configuration.hasServerIdentity {
            _ = misuse(.invalidConfiguration, "a server needs a certificate chain and private key")
            return nil
        }
        if role == .client && name == nil && configuration.needsServerName {
            _ = misuse(.invalidConfiguration,
                "host-name verification needs a serverName: set TLSConfiguration.serverName or "
                + "TLSConnection.serverName, or choose .noHostnameVerification explicitly")
            return nil
        }
        do {
            let engine = try context.engine.makeSession(role: role, transport: transport, serverName: name)
            self.engine = engine
            if let pendingSession, role == .client, !engine.resume(from: pendingSession) {
                _ = fail(TLSError(.invalidConfiguration, "the session given to setSession(_:) cannot be resumed by \(backendName)",
                                  backend: backendName), transport: transport, result: -1)
                return nil
            }
            return engine
        } catch {
            let tlsError = error as? TLSError
                ?? TLSError(.internalError, "\(error)", backend: backendName)
            _ = fail(tlsError, transport: transport, result: -1)
            return nil
        }
    }

    // MARK: - Application data

    /// Reads decrypted application data (`SSL_read`).
    /// - Returns: the number of bytes read (> 0); 0 with ``TLSErrorCode/zeroReturn``
    ///   after the peer's close_notify (sticky; writing still works); 0 with
    ///   ``TLSErrorCode/ssl`` when the peer vanished without close_notify; 0 with
    ///   ``TLSErrorCode/none`` for an empty buffer; -1 see ``error(for:)``.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        if let fatalCode { return repeatFatal(fatalCode) }
        switch phase {
        case .established: break
        case .closedDuringHandshake: return closedCleanly()
        case .idle, .handshaking:
            return misuse(.handshakeNotComplete, "read before the handshake completed")
        }
        if closeNotifyReceived { return closedCleanly() }
        if buffer.count == 0 { return succeed(0) }
        let transport = transport!
        let engine = engine!
        transport.resetStatus()
        let status = engine.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(Int(Int32.max))))
        if case .success = status {} else if let result = wireFailure(engine: engine, transport: transport) {
            return result
        }
        switch status {
        case .success(let count): return succeed(Int32(count))
        case .wantRead: return want(.wantRead)
        case .wantWrite: return want(.wantWrite)
        case .closeNotify:
            closeNotifyReceived = true
            return closedCleanly()
        case .failure(let error):
            return fail(error, transport: transport, result: -1, eofResult: 0)
        }
    }

    /// Reads into the start of `buffer`; see ``read(into:)-(UnsafeMutableRawBufferPointer)``.
    public func read(into buffer: inout [UInt8]) -> Int32 {
        buffer.withUnsafeMutableBytes { read(into: $0) }
    }

    /// Writes application data (`SSL_write`), all or nothing.
    ///
    /// Returns `bytes.count` once every byte is encrypted and handed to the transport.
    /// If the transport blocks, returns -1 with ``TLSErrorCode/wantWrite`` (or
    /// ``TLSErrorCode/wantRead``); call again with the same bytes (they may live at
    /// another address) and the write resumes where it stopped.
    /// - Returns: `bytes.count`; 0 with ``TLSErrorCode/none`` for an empty write;
    ///   -1 see ``error(for:)`` (``TLSErrorCode/ssl`` after our own ``shutdown()``).
    public func write(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        if let fatalCode { return repeatFatal(fatalCode) }
        switch phase {
        case .established: break
        case .closedDuringHandshake, .idle, .handshaking:
            return misuse(.handshakeNotComplete, "write before the handshake completed")
        }
        if closeNotifyStarted {
            return misuse(.alreadyShutDown, "write after shutdown(): close_notify was already sent")
        }
        guard bytes.count <= Int(Int32.max) else {
            return misuse(.invalidState, "a single write is limited to \(Int32.max) bytes")
        }
        var done = 0
        if let pendingWrite {
            guard pendingWrite.length == bytes.count else {
                return misuse(.badWriteRetry,
                    "write retried with \(bytes.count) bytes; the interrupted write had \(pendingWrite.length)")
            }
            done = pendingWrite.done
        }
        if bytes.count == 0 { return succeed(0) }
        let transport = transport!
        let engine = engine!
        transport.resetStatus()
        while done < bytes.count {
            switch engine.write(UnsafeRawBufferPointer(rebasing: bytes[done...])) {
            case .success(let count):
                done += count
            case .wantRead:
                pendingWrite = (bytes.count, done)
                return want(.wantRead)
            case .wantWrite:
                pendingWrite = (bytes.count, done)
                return want(.wantWrite)
            case .closeNotify:
                pendingWrite = nil
                return fail(TLSError(.internalError, "close_notify reported by a write", backend: backendName),
                            transport: transport, result: -1)
            case .failure(let error):
                pendingWrite = nil
                return fail(error, transport: transport, result: -1)
            }
        }
        pendingWrite = nil
        return succeed(Int32(bytes.count))
    }

    /// Writes `bytes`; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBytes { write($0) }
    }

    // MARK: - Shutdown

    /// Closes the TLS session (`SSL_shutdown`). close_notify is sent exactly once.
    /// - Returns: 0 once ours is sent and the peer's not yet seen; 1 once both are;
    ///   -1 with ``TLSErrorCode/wantRead`` / ``TLSErrorCode/wantWrite`` while waiting on
    ///   a non-blocking transport; -1 with ``TLSErrorCode/ssl`` during the handshake
    ///   (nothing is sent) or on failure.
    ///
    /// Call it once to send close_notify (returns 0 or 1); call it again to wait for the
    /// peer's (application data arriving meanwhile is discarded) until it returns 1.
    public func shutdown() -> Int32 {
        if let fatalCode { return repeatFatal(fatalCode) }
        guard phase == .established else {
            return misuse(.shutdownDuringHandshake,
                "shutdown() before the handshake completed: nothing was sent")
        }
        let transport = transport!
        let engine = engine!
        transport.resetStatus()
        if !closeNotifySent {
            closeNotifyStarted = true
            switch engine.sendCloseNotify() {
            case .success, .closeNotify:
                closeNotifySent = true
                return succeed(closeNotifyReceived ? 1 : 0)
            case .wantRead: return want(.wantRead)
            case .wantWrite: return want(.wantWrite)
            case .failure(let error): return fail(error, transport: transport, result: -1)
            }
        }
        if closeNotifyReceived { return succeed(1) }
        var scratch = [UInt8](repeating: 0, count: 16_384)
        while true {
            let status = scratch.withUnsafeMutableBytes { engine.read(into: $0) }
            switch status {
            case .success: continue
            case .closeNotify:
                closeNotifyReceived = true
                return succeed(1)
            case .wantRead: return want(.wantRead)
            case .wantWrite: return want(.wantWrite)
            case .failure(let error): return fail(error, transport: transport, result: -1)
            }
        }
    }

    // MARK: - Results

    /// Explains a result (`SSL_get_error`): ``TLSErrorCode/none`` for a positive result,
    /// otherwise what the last call on this connection ended with.
    public func error(for result: Int32) -> TLSErrorCode {
        result > 0 ? .none : lastCode
    }

    private func succeed(_ result: Int32) -> Int32 {
        lastCode = .none
        return result
    }

    private func want(_ code: TLSErrorCode) -> Int32 {
        lastCode = code
        return -1
    }

    private func closedCleanly() -> Int32 {
        lastCode = .zeroReturn
        return 0
    }

    /// A call that does not fit the state: -1 `.ssl`, the connection stays usable.
    private func misuse(_ code: TLSError.Code, _ message: String) -> Int32 {
        lastCode = .ssl
        lastError = TLSError(code, message, backend: backendName)
        return -1
    }

    private func repeatFatal(_ code: TLSErrorCode) -> Int32 {
        lastCode = code
        return -1
    }

    /// A fatal failure: the transport's record wins over the backend's description,
    /// so `.syscall` and unexpected EOF are reported identically on every backend.
    private func fail(_ error: TLSError, transport: TLSTransportIO, result: Int32, eofResult: Int32 = -1) -> Int32 {
        var code = TLSErrorCode.ssl
        var final = error
        var value = result
        if let errno = transport.failureErrno {
            code = .syscall
            final = TLSError(.transportFailure, "the transport failed: \(String(cString: strerror(errno)))",
                             backend: backendName, errno: errno)
        } else if transport.reachedEndOfStream && error.code != .alertReceived {
            final = TLSError(.unexpectedEOF,
                             "the peer closed the transport without close_notify (unexpected EOF); backend said: \(error.message)",
                             backend: backendName)
            value = eofResult
        }
        fatalCode = code
        lastCode = code
        lastError = final
        pendingWrite = nil
        return value
    }

    // MARK: - Resumption, exporters, KeyUpdate

    private func requireCapability(_ capability: TLSCapabilities, _ what: String) throws {
        guard context.engine.capabilities.contains(capability) else {
            throw TLSError(.unsupported, "\(what) is not supported by the \(backendName) backend", backend: backendName)
        }
    }

    /// Client role: resume `session` (from ``session`` of an earlier connection, possibly
    /// in another process). Call before the handshake. The server decides whether to
    /// resume; ``isSessionReused`` tells after the handshake.
    /// - Throws: ``TLSError/Code/unsupported`` without ``TLSCapabilities/sessionResumption``;
    ///   ``TLSError/Code/invalidState`` after the handshake began or for another backend's session.
    public func setSession(_ session: TLSSession) throws {
        try requireCapability(.sessionResumption, "session resumption")
        guard self.engine == nil, phase == .idle else {
            throw TLSError(.invalidState, "setSession(_:) must come before the handshake", backend: backendName)
        }
        guard session.backend == backendName else {
            throw TLSError(.invalidState, "a \(session.backend) session cannot be resumed by \(backendName)", backend: backendName)
        }
        pendingSession = session
    }

    /// Client role: the session to store for resuming later, once the library has one.
    /// With TLS 1.3 the server sends its tickets after the handshake: read once (even a
    /// -1 want-read read processes them) before asking.
    public var session: TLSSession? {
        guard role == .client, phase == .established, let bytes = engine?.exportedSession else { return nil }
        return TLSSession(bytes: bytes, backend: backendName)
    }

    /// True when the completed handshake resumed an earlier session.
    public var isSessionReused: Bool { establishedSession?.isSessionReused ?? false }

    /// The negotiated key-exchange group (`x25519`, `secp256r1`…), when known.
    public var negotiatedGroup: TLSGroup? { establishedSession?.negotiatedGroup }

    /// Keying material from the exporter (RFC 5705; RFC 8446 §7.5), the same on both ends.
    /// - Throws: ``TLSError/Code/handshakeNotComplete`` before the handshake;
    ///   ``TLSError/Code/unsupported`` without ``TLSCapabilities/keyingMaterialExporter``.
    public func exportKeyingMaterial(label: String, context exporterContext: [UInt8]? = nil, length: Int) throws -> [UInt8] {
        try requireCapability(.keyingMaterialExporter, "the keying-material exporter")
        guard let engine = establishedSession else {
            throw TLSError(.handshakeNotComplete, "keying material is exported after the handshake", backend: backendName)
        }
        guard length > 0, length <= 16_384, !label.isEmpty else {
            throw TLSError(.invalidState, "exporter length must be 1…16384 and the label non-empty", backend: backendName)
        }
        guard let bytes = engine.exportKeyingMaterial(label: label, context: exporterContext, length: length) else {
            throw TLSError(.internalError, "the exporter failed for label \(label)", backend: backendName)
        }
        return bytes
    }

    /// A channel binding for this connection (RFC 5056), the same on both ends.
    /// - Throws: ``TLSError/Code/unsupported`` for `tls-exporter` on TLS 1.2 (RFC 9266 §3
    ///   requires TLS 1.3 here), ``TLSError/Code/handshakeNotComplete`` before the handshake.
    public func channelBinding(_ type: TLSChannelBinding) throws -> [UInt8] {
        guard establishedSession != nil else {
            throw TLSError(.handshakeNotComplete, "channel bindings exist after the handshake", backend: backendName)
        }
        switch type {
        case .tlsExporter:
            guard negotiatedVersion == .tls13 else {
                throw TLSError(.unsupported, "tls-exporter channel binding needs TLS 1.3 (RFC 9266)", backend: backendName)
            }
            return try exportKeyingMaterial(label: "EXPORTER-Channel-Binding", context: nil, length: 32)
        case .tlsServerEndPoint:
            let certificate: [UInt8]?
            if role == .client {
                certificate = peerCertificateChain.first
            } else {
                certificate = ownCertificate
            }
            guard let certificate else {
                throw TLSError(.invalidState, "no server certificate for tls-server-end-point", backend: backendName)
            }
            return context.engine.digest(TLSDER.serverEndPointHash(certificate: certificate), certificate)
        }
    }

    /// The certificate this side sent (server role), for `tls-server-end-point`.
    private var ownCertificate: [UInt8]? { establishedSession?.localCertificate }

    /// Sends a TLS 1.3 KeyUpdate; with `updatePeer` the peer is asked to update its keys
    /// too (it answers with its own KeyUpdate). Call again on -1 want-write/want-read.
    /// - Returns: 1 once sent; -1 with ``TLSErrorCode/ssl`` before the handshake, on TLS 1.2,
    ///   after shutdown, or without ``TLSCapabilities/keyUpdate``.
    public func requestKeyUpdate(updatePeer: Bool = true) -> Int32 {
        if let fatalCode { return repeatFatal(fatalCode) }
        guard context.engine.capabilities.contains(.keyUpdate) else {
            return misuse(.unsupported, "KeyUpdate is not supported by the \(backendName) backend")
        }
        guard let engine = establishedSession else {
            return misuse(.handshakeNotComplete, "KeyUpdate is sent after the handshake")
        }
        guard negotiatedVersion == .tls13 else { return misuse(.unsupported, "KeyUpdate exists in TLS 1.3 only") }
        if closeNotifyStarted { return misuse(.alreadyShutDown, "KeyUpdate after shutdown()") }
        let transport = transport!
        transport.resetStatus()
        switch engine.requestKeyUpdate(updatePeer: updatePeer) {
        case .success, .closeNotify: return succeed(1)
        case .wantRead: return want(.wantRead)
        case .wantWrite: return want(.wantWrite)
        case .failure(let error): return fail(error, transport: transport, result: -1)
        }
    }

    // MARK: - After the handshake

    /// True once the handshake returned 1.
    public var isHandshakeComplete: Bool { phase == .established }

    private var establishedSession: (any TLSSessionEngine)? {
        phase == .established ? engine : nil
    }

    /// The peer's leaf certificate, parsed; nil before the handshake or without one.
    public var peerCertificateInfo: TLSCertificateInfo? {
        guard let leaf = peerCertificateChain.first else { return nil }
        return try? context.engine.certificateInfo(der: leaf)
    }

    /// The negotiated protocol version.
    public var negotiatedVersion: TLSVersion? { establishedSession?.negotiatedVersion }
    /// The negotiated cipher suite by its IANA name, e.g. `TLS_AES_128_GCM_SHA256`.
    public var cipherSuite: String? { establishedSession?.cipherSuite }
    /// The ALPN protocol both sides agreed on, if any.
    public var negotiatedApplicationProtocol: String? { establishedSession?.negotiatedApplicationProtocol }
    /// The peer's certificate chain as sent, leaf first, DER-encoded.
    public var peerCertificateChain: [[UInt8]] { establishedSession?.peerCertificateChain ?? [] }
    /// Server role: the host name the client asked for with SNI.
    public var requestedServerName: String? { establishedSession?.requestedServerName }

    /// How the peer was verified by the completed handshake; nil before that.
    public var peerVerification: TLSPeerVerification? {
        guard phase == .established, let role else { return nil }
        let configuration = context.configuration
        if role == .server {
            if configuration.clientAuthentication == .none || peerCertificateChain.isEmpty {
                return .noPeerCertificate
            }
        }
        if configuration.pinningMode == .insteadOfChainVerification { return .pinnedPublicKey }
        switch configuration.certificateVerification {
        case .insecureNoVerification: return .notVerified
        case .noHostnameVerification: return .verifiedWithoutHostname
        case .fullVerification: return role == .client ? .verified : .verifiedWithoutHostname
        }
    }
}
