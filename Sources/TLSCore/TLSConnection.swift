// Over 400 lines on purpose: the whole contract state machine (handshake, read, write,
// shutdown, results) reads top to bottom in one file; optional features are in
// TLSConnection+Features.swift.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
/// | 0 | the peer closed cleanly (``TLSResultCode/zeroReturn``), or — for `read` — the peer vanished without close_notify (``TLSResultCode/ssl``, unexpected EOF); for `shutdown`, our close_notify is sent and the peer's not yet seen |
/// | -1 | ``TLSResultCode/wantRead`` / ``TLSResultCode/wantWrite``: call again once the transport can progress; ``TLSResultCode/ssl`` / ``TLSResultCode/syscall``: failure, see ``lastError`` |
///
/// The rules are the same for every backend; they are written here once (the state is
/// one ``TLSConnectionState`` value) and the backends only translate single calls onto
/// their C library.
///
/// A connection is not thread-safe: use it from one thread at a time.
public final class TLSConnection {
    /// The context the connection was made from.
    public let context: TLSContext

    var transport: TLSTransportIO?
    var state = TLSConnectionState.idle(resuming: nil)
    private var lastCode = TLSResultCode.none

    /// The role set by ``setConnectState()`` / ``setAcceptState()`` (or by ``connect()`` / ``accept()``).
    public private(set) var role: TLSRole?

    /// The error behind the last `.ssl` or `.syscall` result. After a fatal failure it
    /// is the first failure's error for the life of the connection: the failed state
    /// carries it, and no later call replaces it.
    public var lastError: TLSError? {
        if case .failed(_, let error, _) = state { return error }
        return usageError
    }

    /// The error of the last refused call (misuse, a refused configuration), while the
    /// connection has not failed fatally.
    private var usageError: TLSError?

    /// Client role: the host name for SNI and verification, overriding
    /// ``TLSConfiguration/serverName`` for this connection. Set it before the handshake.
    public var serverName: String?

    /// The custom verification callback for this connection (see ``TLSCustomVerification``):
    /// ``TLSConfiguration/customVerification`` unless set otherwise. Set it before the
    /// handshake; it is read at the first handshake step. Needs
    /// ``TLSCapabilities/customVerification`` (else that step returns -1 `.ssl`
    /// ``TLSError/Code/unsupported`` and sends nothing).
    public var customVerification: TLSCustomVerification?

    /// Called once when the answer to a pending custom verification arrives, on the
    /// thread that gave it (right after ``TLSVerificationCompletion/complete(_:)``; not when
    /// the callback answered before returning). The connection is not thread-safe: wake
    /// the thread or event loop that owns it and call the handshake again from there.
    /// Set before the handshake, or while it returns ``TLSResultCode/wantRetryVerify``
    /// (if the answer is already in, it is called at once).
    public var verificationWakeUp: (@Sendable () -> Void)? {
        didSet { customVerifier?.wakeUp = verificationWakeUp }
    }

    /// The verifier of this handshake, when ``customVerification`` is set.
    var customVerifier: TLSCustomVerifier?

    /// Server role: called once when the answer to a pending
    /// ``TLSConfiguration/serverIdentitySelector`` arrives, on the thread that gave it (not
    /// when the selector answered before returning). As with ``verificationWakeUp``: wake
    /// the thread or event loop that owns the connection and call the handshake again
    /// there. Set before the handshake, or while it returns ``TLSResultCode/wantClientHello``
    /// (if the answer is already in, it is called at once).
    public var clientHelloWakeUp: (@Sendable () -> Void)? {
        didSet { clientHelloGate?.wakeUp = clientHelloWakeUp }
    }

    /// Server role: the ClientHello gate of this handshake, when the configuration has a
    /// ``TLSConfiguration/serverIdentitySelector``.
    var clientHelloGate: TLSClientHelloGate?

    /// True while the server's handshake waits for its identity selector's answer (the
    /// handshake calls return -1 ``TLSResultCode/wantClientHello``).
    public var isClientHelloPending: Bool { clientHelloGate?.isPending ?? false }

    /// Blocks the calling thread until the server identity selector has answered, or
    /// `timeout` has passed (nil: no limit). True once the answer is in (at once when
    /// nothing is pending). Call the handshake again afterwards.
    public func waitForClientHello(timeout: Duration? = nil) -> Bool {
        clientHelloGate?.waitForAnswer(until: timeout.map { ContinuousClock.now + $0 }) ?? true
    }

    init(context: TLSContext) {
        self.context = context
        self.customVerification = context.configuration.customVerification
    }

    /// True while the handshake waits for the custom verification callback's answer
    /// (the handshake calls return -1 ``TLSResultCode/wantRetryVerify``).
    public var isVerificationPending: Bool { customVerifier?.isPending ?? false }

    /// Blocks the calling thread until the custom verification callback has answered, or
    /// `timeout` has passed (nil: no limit). Returns true once the answer is in (at once
    /// when nothing is pending). Call the handshake again afterwards.
    public func waitForVerification(timeout: Duration? = nil) -> Bool {
        customVerifier?.waitForAnswer(until: timeout.map { ContinuousClock.now + $0 }) ?? true
    }

    /// The chain the custom verification callback returned with its accept
    /// (``TLSVerificationVerdict/accept(validatedChain:)``), if any.
    public var validatedCertificateChain: [[UInt8]]? { customVerifier?.validatedChain }

    var backendID: TLSBackendID { context.backendID }

    // MARK: - Set-up

    /// Attaches the transport (`SSL_set_fd` / `SSL_set_bio`). Only once per connection.
    /// - Throws: ``TLSError/Code/invalidState`` if a transport is already attached.
    public func setTransport(_ transport: TLSTransport) throws {
        guard self.transport == nil else {
            throw TLSError(.invalidState, "a transport is already attached to this connection", backend: backendID)
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
        if state.hasBegun, role != newRole {
            throw TLSError(.invalidState, "the role cannot change once the handshake has begun", backend: backendID)
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
        var resuming: TLSSession?
        var running: (any TLSConnectionEngine)?
        switch state {
        case .failed(let code, _, _): return repeatFatal(code)
        case .established: return succeed(1)
        case .closedDuringHandshake: return closedCleanly()
        case .idle(let session): resuming = session
        case .handshaking(let engine): running = engine
        }
        guard let role else {
            return misuse(.roleNotSet, "the handshake needs a role: call setConnectState() or setAcceptState() first")
        }
        guard let transport else {
            return misuse(.noTransport, "no transport is attached: call setTransport(_:) before the handshake")
        }
        guard let engine = running ?? startSession(role: role, transport: transport, resuming: resuming) else { return -1 }
        state = .handshaking(engine)
        // A server with an identity selector reads the ClientHello before the library.
        if let gate = clientHelloGate, let result = selectIdentity(gate, engine: engine, transport: transport) {
            return result
        }
        // Nothing to do until the callback answers: the library is not called again.
        if let customVerifier, customVerifier.isPending { return want(.wantRetryVerify) }
        transport.resetStatus()
        transport.wire.role = role
        let status = engine.handshake()
        if case .success = status {
            state = .established(.init(engine: engine))
            transport.wire.handshakeCompleted(version: engine.negotiatedVersion)
            return succeed(1)
        }
        if let result = wireFailure(engine: engine, transport: transport) { return result }
        switch status {
        case .success: return succeed(1)
        case .wantRead: return want(.wantRead)
        case .wantWrite: return want(.wantWrite)
        case .wantRetryVerify: return want(.wantRetryVerify)
        case .closeNotify:
            state = .closedDuringHandshake
            return closedCleanly()
        case .failure(let error):
            // A close_notify can arrive unprotected before any handshake message (the
            // very first record): OpenSSL 3.0 calls that "unexpected message". It is
            // still the peer's controlled shutdown: 0, as when it arrives later.
            if let alert = transport.lastPlaintextAlert, alert.description == TLSAlert.closeNotify.rawValue {
                state = .closedDuringHandshake
                return closedCleanly()
            }
            // A fatal alert the peer could still send unprotected is the peer's word,
            // even where a library calls it an unexpected message (OpenSSL's server
            // before the ClientHello): -1 alertReceived, nothing sent back.
            if let alert = transport.lastPlaintextAlert, alert.level == 2, error.code == .protocolFailure {
                let received = TLSAlert(alert.description)
                return fail(TLSError(.alertReceived, "the peer sent the fatal alert \(received) (unprotected); backend said: \(error.message)",
                                     backend: backendID, alert: received), transport: transport, result: -1)
            }
            // Every protocol failure we detect sends a fatal alert, so the peer never
            // waits: the library's own, else unexpected_message (OpenSSL sends none for
            // bytes that are not TLS at all; GnuTLS none for errors without an alert).
            // During the handshake only: afterwards the library has keys and sends its
            // own alert protected, where an alert written for it could only be plaintext.
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
    /// Checked after every engine call that did not succeed (and the handshake's wants),
    /// so no backend has to send the wire reader's alert itself.
    func wireFailure(engine: any TLSConnectionEngine, transport: TLSTransportIO) -> Int32? {
        guard let violation = transport.wire.violation, transport.failureErrno == nil else { return nil }
        let sent = engine.sendFatalAlert(violation.alert)
        return fail(TLSError(.protocolFailure, "the peer sent \(violation.reason)" + (sent.map { " (alert \($0) sent)" } ?? ""),
                             backend: backendID, alert: sent ?? violation.alert),
                    transport: transport, result: -1)
    }

    /// One step of the ClientHello gate: nil once the library may run, else the result
    /// of this handshake call (more bytes, the selector's answer, or a failure).
    private func selectIdentity(_ gate: TLSClientHelloGate, engine: any TLSConnectionEngine,
                                transport: TLSTransportIO) -> Int32? {
        transport.resetStatus()
        let answer: Result<TLSServerIdentityChoice, TLSError>
        switch gate.advance(transport) {
        case .proceed: return nil
        case .wantRead: return want(.wantRead)
        case .wantAnswer: return want(.wantClientHello)
        case .malformed(let violation):
            let sent = engine.sendFatalAlert(violation.alert)
            return fail(TLSError(.protocolFailure, "the peer sent \(violation.reason)" + (sent.map { " (alert \($0) sent)" } ?? ""),
                                 backend: backendID, alert: sent ?? violation.alert),
                        transport: transport, result: -1)
        case .answered(let result): answer = result
        }
        func refuse(_ error: TLSError, _ alert: TLSAlert) -> Int32 {
            let sent = engine.sendFatalAlert(alert)
            return fail(TLSError(error.code, error.message + (sent.map { " (alert \($0) sent)" } ?? ""),
                                 backend: error.backend, alert: sent ?? alert),
                        transport: transport, result: -1)
        }
        switch answer {
        case .failure(let error):
            return refuse(error, .internalError)
        case .success(.refuse(let alert)):
            return refuse(TLSError(.handshakeRefused, "the server identity selector refused the handshake", backend: .tlsKit), alert)
        case .success(.defaultIdentity):
            guard context.configuration.hasServerIdentity else {
                return refuse(TLSError(.handshakeRefused, "the server identity selector chose the default identity, and the configuration has none",
                                       backend: .tlsKit), .internalError)
            }
        case .success(.credentials(let credentials)):
            guard !credentials.isEmpty else {
                return refuse(TLSError(.handshakeRefused, "the server identity selector chose an empty list of credentials",
                                       backend: .tlsKit), .internalError)
            }
            do {
                try engine.useServerCredentials(try context.preparedCredentials(credentials))
            } catch {
                let reason = (error as? TLSError) ?? TLSError(.internalError, "\(error)", backend: backendID)
                return refuse(TLSError(.handshakeRefused, "the identity the server identity selector chose cannot be used: \(reason.code): \(reason.message)",
                                       backend: reason.backend), .internalError)
            }
        }
        gate.settle(transport)
        return nil
    }

    /// The checks every backend relies on, then the backend's session. Nil with the
    /// result recorded when a check or the backend refuses.
    private func startSession(role: TLSRole, transport: TLSTransportIO, resuming: TLSSession?) -> (any TLSConnectionEngine)? {
        let configuration = context.configuration
        let name = role == .client ? (serverName ?? configuration.serverName) : nil
        if let name {
            do { try TLSConfiguration.checkServerName(name) } catch {
                lastCode = .ssl
                usageError = error
                return nil
            }
        }
        // Checked here once for every backend; nothing has been sent yet. (With a
        // selector the identity may come from it alone.)
        if role == .server && !configuration.hasServerIdentity && configuration.serverIdentitySelector == nil {
            _ = misuse(.invalidConfiguration, "a server needs a certificate chain and private key")
            return nil
        }
        if role == .client && name == nil && configuration.needsServerName {
            _ = misuse(.invalidConfiguration,
                "host-name verification needs a serverName: set TLSConfiguration.serverName or "
                + "TLSConnection.serverName, or choose .noHostnameVerification explicitly")
            return nil
        }
        // Per-connection settings need their capability as configuration options do at
        // makeContext: refused before the backend is involved, nothing sent.
        let capabilities = context.backend.capabilities
        let unsupported: String? =
            if customVerification != nil && !capabilities.contains(.customVerification) {
                "customVerification"
            } else if let name, TLSConfiguration.isSentAsSNI(name), !capabilities.contains(.serverNameIndication) {
                "serverName \"\(name)\" (sent as SNI)"
            } else if role == .client && !configuration.primaryCredentials.isEmpty && !capabilities.contains(.mutualTLS) {
                "a client certificate (mutual TLS)"
            } else {
                nil
            }
        if let unsupported {
            _ = misuse(.unsupported, "\(unsupported) is not supported by the \(backendID) backend")
            return nil
        }
        do {
            let engine = try context.engine.makeConnectionEngine(role: role, transport: transport, serverName: name)
            state = .handshaking(engine)
            if let customVerification {
                let verifier = TLSCustomVerifier(
                    callback: customVerification, role: role,
                    hostnamePolicy: TLSPeerPolicy(configuration: configuration, role: role, serverName: name).hostnameOnly)
                verifier.wakeUp = verificationWakeUp
                customVerifier = verifier
                engine.install(customVerifier: verifier)
            }
            if role == .server, let selector = configuration.serverIdentitySelector {
                let gate = TLSClientHelloGate(selector: selector)
                gate.wakeUp = clientHelloWakeUp
                clientHelloGate = gate
            }
            if let resuming, role == .client, !engine.resume(from: resuming) {
                _ = fail(TLSError(.invalidConfiguration, "the session given to setSession(_:) cannot be resumed by \(backendID)",
                                  backend: backendID), transport: transport, result: -1)
                return nil
            }
            return engine
        } catch {
            let tlsError = error as? TLSError
                ?? TLSError(.internalError, "\(error)", backend: backendID)
            _ = fail(tlsError, transport: transport, result: -1)
            return nil
        }
    }

    // MARK: - Application data

    /// Reads decrypted application data (`SSL_read`).
    /// - Returns: the number of bytes read (> 0); 0 with ``TLSResultCode/zeroReturn``
    ///   after the peer's close_notify (sticky; writing still works); 0 with
    ///   ``TLSResultCode/ssl`` when the peer vanished without close_notify; 0 with
    ///   ``TLSResultCode/none`` for an empty buffer; -1 see ``error(for:)``.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        var established: TLSConnectionState.Established
        switch state {
        case .failed(let code, _, _): return repeatFatal(code)
        case .closedDuringHandshake: return closedCleanly()
        case .idle, .handshaking:
            return misuse(.handshakeNotComplete, "read before the handshake completed")
        case .established(let current): established = current
        }
        if established.peerClosed { return closedCleanly() }
        if buffer.count == 0 { return succeed(0) }
        let transport = transport!
        let engine = established.engine
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
            established.peerClosed = true
            state = .established(established)
            return closedCleanly()
        case .wantRetryVerify:
            return fail(TLSError(.internalError, "a read reported a pending verification", backend: backendID),
                        transport: transport, result: -1)
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
    /// If the transport blocks, returns -1 with ``TLSResultCode/wantWrite`` (or
    /// ``TLSResultCode/wantRead``); call again with the same bytes (they may live at
    /// another address) and the write resumes where it stopped.
    /// - Returns: `bytes.count`; 0 with ``TLSResultCode/none`` for an empty write;
    ///   -1 see ``error(for:)`` (``TLSResultCode/ssl`` after our own ``shutdown()``).
    public func write(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        var established: TLSConnectionState.Established
        switch state {
        case .failed(let code, _, _): return repeatFatal(code)
        case .closedDuringHandshake, .idle, .handshaking:
            return misuse(.handshakeNotComplete, "write before the handshake completed")
        case .established(let current): established = current
        }
        if established.closeNotify != .notSent {
            return misuse(.alreadyShutDown, "write after shutdown(): close_notify was already sent")
        }
        guard bytes.count <= Int(Int32.max) else {
            return misuse(.invalidState, "a single write is limited to \(Int32.max) bytes")
        }
        var done = 0
        if let pendingWrite = established.pendingWrite {
            guard pendingWrite.length == bytes.count else {
                return misuse(.badWriteRetry,
                    "write retried with \(bytes.count) bytes; the interrupted write had \(pendingWrite.length)")
            }
            done = pendingWrite.done
        }
        if bytes.count == 0 { return succeed(0) }
        let transport = transport!
        transport.resetStatus()
        while done < bytes.count {
            switch established.engine.write(UnsafeRawBufferPointer(rebasing: bytes[done...])) {
            case .success(let count):
                done += count
            case .wantRead:
                established.pendingWrite = (bytes.count, done)
                state = .established(established)
                return want(.wantRead)
            case .wantWrite:
                established.pendingWrite = (bytes.count, done)
                state = .established(established)
                return want(.wantWrite)
            case .closeNotify, .wantRetryVerify:
                return fail(TLSError(.internalError, "close_notify or a pending verification reported by a write", backend: backendID),
                            transport: transport, result: -1)
            case .failure(let error):
                if let result = wireFailure(engine: established.engine, transport: transport) { return result }
                return fail(error, transport: transport, result: -1)
            }
        }
        established.pendingWrite = nil
        state = .established(established)
        return succeed(Int32(bytes.count))
    }

    /// Writes `bytes`; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBytes { write($0) }
    }

    // MARK: - Shutdown

    /// Closes the TLS session (`SSL_shutdown`). close_notify is sent exactly once.
    /// - Returns: 0 once ours is sent and the peer's not yet seen; 1 once both are;
    ///   -1 with ``TLSResultCode/wantRead`` / ``TLSResultCode/wantWrite`` while waiting on
    ///   a non-blocking transport; -1 with ``TLSResultCode/ssl`` during the handshake
    ///   (nothing is sent) or on failure.
    ///
    /// Call it once to send close_notify (returns 0 or 1); call it again to wait for the
    /// peer's (application data arriving meanwhile is discarded) until it returns 1.
    public func shutdown() -> Int32 {
        var established: TLSConnectionState.Established
        switch state {
        case .failed(let code, _, _): return repeatFatal(code)
        case .established(let current): established = current
        case .idle, .handshaking, .closedDuringHandshake:
            return misuse(.shutdownDuringHandshake,
                "shutdown() before the handshake completed: nothing was sent")
        }
        let transport = transport!
        let engine = established.engine
        transport.resetStatus()
        if established.closeNotify != .sent {
            established.closeNotify = .sending
            state = .established(established)
            switch engine.sendCloseNotify() {
            case .success, .closeNotify:
                established.closeNotify = .sent
                state = .established(established)
                return succeed(established.peerClosed ? 1 : 0)
            case .wantRead: return want(.wantRead)
            case .wantWrite: return want(.wantWrite)
            case .wantRetryVerify:
                return fail(TLSError(.internalError, "close_notify reported a pending verification", backend: backendID),
                            transport: transport, result: -1)
            case .failure(let error):
                return wireFailure(engine: engine, transport: transport) ?? fail(error, transport: transport, result: -1)
            }
        }
        if established.peerClosed { return succeed(1) }
        var scratch = [UInt8](repeating: 0, count: 16_384)
        while true {
            let status = scratch.withUnsafeMutableBytes { engine.read(into: $0) }
            switch status {
            case .success: continue
            case .closeNotify:
                established.peerClosed = true
                state = .established(established)
                return succeed(1)
            case .wantRead: return want(.wantRead)
            case .wantWrite: return want(.wantWrite)
            case .wantRetryVerify:
                return fail(TLSError(.internalError, "a read reported a pending verification", backend: backendID),
                            transport: transport, result: -1)
            case .failure(let error):
                return wireFailure(engine: engine, transport: transport) ?? fail(error, transport: transport, result: -1)
            }
        }
    }

    // MARK: - Results

    /// Explains a result (`SSL_get_error`): ``TLSResultCode/none`` for a positive result,
    /// otherwise what the last call on this connection ended with.
    public func error(for result: Int32) -> TLSResultCode {
        result > 0 ? .none : lastCode
    }

    func succeed(_ result: Int32) -> Int32 {
        lastCode = .none
        return result
    }

    func want(_ code: TLSResultCode) -> Int32 {
        lastCode = code
        return -1
    }

    private func closedCleanly() -> Int32 {
        lastCode = .zeroReturn
        return 0
    }

    /// A call that does not fit the state: -1 `.ssl`, the connection stays usable. After
    /// a fatal result the fatal result is repeated instead: the first error stays.
    func misuse(_ code: TLSError.Code, _ message: String) -> Int32 {
        if case .failed(let fatal, _, _) = state { return repeatFatal(fatal) }
        lastCode = .ssl
        usageError = TLSError(code, message, backend: backendID)
        return -1
    }

    func repeatFatal(_ code: TLSResultCode) -> Int32 {
        lastCode = code
        return -1
    }

    /// A fatal failure: the transport's record wins over the backend's description,
    /// so `.syscall` and unexpected EOF are reported identically on every backend.
    func fail(_ error: TLSError, transport: TLSTransportIO, result: Int32, eofResult: Int32 = -1) -> Int32 {
        if case .failed(let fatal, _, _) = state { return repeatFatal(fatal) }
        var code = TLSResultCode.ssl
        var final = error
        var value = result
        if let errno = transport.failureErrno {
            code = .syscall
            final = TLSError(.transportFailure, "the transport failed: \(String(cString: strerror(errno)))",
                             backend: backendID, errno: errno)
        } else if transport.reachedEndOfStream && error.code != .alertReceived {
            final = TLSError(.unexpectedEOF,
                             "the peer closed the transport without close_notify (unexpected EOF); backend said: \(error.message)",
                             backend: backendID)
            value = eofResult
        }
        var established = state.established
        established?.pendingWrite = nil
        state = .failed(code, final, established: established)
        lastCode = code
        return value
    }
}
