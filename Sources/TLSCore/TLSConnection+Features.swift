#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Optional features over the state machine: resumption, exporters, channel bindings,
/// KeyUpdate, and what a completed handshake negotiated.
extension TLSConnection {

    private func requireCapability(_ capability: TLSCapabilities, _ what: String) throws {
        guard context.backend.capabilities.contains(capability) else {
            throw TLSError(.unsupported, "\(what) is not supported by the \(backendID) backend", backend: backendID)
        }
    }

    /// Client role: resume `session` (from ``session`` of an earlier connection, possibly
    /// in another process). Call before the handshake. The server decides whether to
    /// resume; ``isSessionReused`` tells after the handshake.
    /// - Throws: ``TLSError/Code/unsupported`` without ``TLSCapabilities/sessionResumption``;
    ///   ``TLSError/Code/invalidState`` after the handshake began or for another backend's session.
    public func setSession(_ session: TLSSession) throws {
        try requireCapability(.sessionResumption, "session resumption")
        guard case .idle = state else {
            throw TLSError(.invalidState, "setSession(_:) must come before the handshake", backend: backendID)
        }
        guard session.backend == backendID else {
            throw TLSError(.invalidState, "a \(session.backend) session cannot be resumed by \(backendID)", backend: backendID)
        }
        state = .idle(resuming: session)
    }

    /// Client role: the session to store for resuming later, once the library has one.
    /// With TLS 1.3 the server sends its tickets after the handshake: read once (even a
    /// -1 want-read read processes them) before asking.
    public var session: TLSSession? {
        guard role == .client, let bytes = establishedSession?.exportedSession else { return nil }
        return TLSSession(bytes: bytes, backend: backendID)
    }

    /// True when the completed handshake resumed an earlier session.
    public var isSessionReused: Bool { establishedSession?.isSessionReused ?? false }

    /// The negotiated key-exchange group (`x25519`, `secp256r1`…); nil before the
    /// handshake completed or when the library does not say.
    /// - Throws: ``TLSError/Code/unsupported`` without ``TLSCapabilities/groupSelection``.
    public var negotiatedGroup: TLSGroup? {
        get throws {
            try requireCapability(.groupSelection, "negotiatedGroup")
            return establishedSession?.negotiatedGroup
        }
    }

    /// Keying material from the exporter (RFC 5705; RFC 8446 §7.5), the same on both ends.
    /// - Throws: ``TLSError/Code/handshakeNotComplete`` before the handshake;
    ///   ``TLSError/Code/unsupported`` without ``TLSCapabilities/keyingMaterialExporter``;
    ///   after a fatal result, that result's error (``lastError``).
    public func exportKeyingMaterial(label: String, context exporterContext: [UInt8]? = nil, length: Int) throws -> [UInt8] {
        try requireCapability(.keyingMaterialExporter, "the keying-material exporter")
        // Never an engine call after a fatal result: the first failure, again.
        if case .failed(_, let error, _) = state { throw error }
        guard let engine = establishedSession else {
            throw TLSError(.handshakeNotComplete, "keying material is exported after the handshake", backend: backendID)
        }
        guard length > 0, length <= 16_384, !label.isEmpty else {
            throw TLSError(.invalidState, "exporter length must be 1…16384 and the label non-empty", backend: backendID)
        }
        guard let bytes = engine.exportKeyingMaterial(label: label, context: exporterContext, length: length) else {
            throw TLSError(.internalError, "the exporter failed for label \(label)", backend: backendID)
        }
        return bytes
    }

    /// A channel binding for this connection (RFC 5056), the same on both ends.
    /// - Throws: ``TLSError/Code/unsupported`` for `tls-exporter` on TLS 1.2 (RFC 9266 §3
    ///   requires TLS 1.3 here), ``TLSError/Code/handshakeNotComplete`` before the handshake.
    public func channelBinding(_ type: TLSChannelBinding) throws -> [UInt8] {
        guard establishedSession != nil else {
            throw TLSError(.handshakeNotComplete, "channel bindings exist after the handshake", backend: backendID)
        }
        switch type {
        case .tlsExporter:
            guard negotiatedVersion == .tls13 else {
                throw TLSError(.unsupported, "tls-exporter channel binding needs TLS 1.3 (RFC 9266)", backend: backendID)
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
                throw TLSError(.invalidState, "no server certificate for tls-server-end-point", backend: backendID)
            }
            return context.engine.digest(TLSDER.serverEndPointHash(certificate: certificate), certificate)
        }
    }

    /// The certificate this side sent (server role), for `tls-server-end-point`.
    private var ownCertificate: [UInt8]? { establishedSession?.localCertificate }

    /// Sends a TLS 1.3 KeyUpdate; with `updatePeer` the peer is asked to update its keys
    /// too (it answers with its own KeyUpdate). Call again on -1 want-write/want-read.
    /// - Returns: 1 once sent; -1 with ``TLSResultCode/ssl`` before the handshake, on TLS 1.2,
    ///   after shutdown, or without ``TLSCapabilities/keyUpdate``.
    public func requestKeyUpdate(updatePeer: Bool = true) -> Int32 {
        if case .failed(let code, _, _) = state { return repeatFatal(code) }
        guard context.backend.capabilities.contains(.keyUpdate) else {
            return misuse(.unsupported, "KeyUpdate is not supported by the \(backendID) backend")
        }
        guard let engine = establishedSession else {
            return misuse(.handshakeNotComplete, "KeyUpdate is sent after the handshake")
        }
        guard negotiatedVersion == .tls13 else { return misuse(.unsupported, "KeyUpdate exists in TLS 1.3 only") }
        if state.established?.closeNotify != .notSent { return misuse(.alreadyShutDown, "KeyUpdate after shutdown()") }
        let transport = transport!
        transport.resetStatus()
        switch engine.requestKeyUpdate(updatePeer: updatePeer) {
        case .success, .closeNotify: return succeed(1)
        case .wantRead: return want(.wantRead)
        case .wantWrite: return want(.wantWrite)
        case .wantRetryVerify:
            return fail(TLSError(.internalError, "a KeyUpdate reported a pending verification", backend: backendID),
                        transport: transport, result: -1)
        case .failure(let error):
            return wireFailure(engine: engine, transport: transport) ?? fail(error, transport: transport, result: -1)
        }
    }

    // MARK: - After the handshake

    /// True once the handshake returned 1.
    public var isHandshakeComplete: Bool { state.established != nil }

    private var establishedSession: (any TLSConnectionEngine)? { state.established?.engine }

    /// The peer's leaf certificate, parsed; nil before the handshake or without one.
    public var peerCertificateInfo: TLSCertificateInfo? {
        guard let leaf = peerCertificateChain.first else { return nil }
        return try? context.backend.certificateInfo(der: leaf)
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
        guard isHandshakeComplete, let role else { return nil }
        let configuration = context.configuration
        if role == .server {
            if configuration.clientAuthentication == .none || peerCertificateChain.isEmpty {
                return .noPeerCertificate
            }
        }
        if let verdict = customVerifier?.acceptedWithHostname { return .customVerification(hostnameVerified: verdict) }
        if configuration.pinningMode == .insteadOfChainVerification { return .pinnedPublicKey }
        switch configuration.certificateVerification {
        case .insecureNoVerification: return .notVerified
        case .noHostnameVerification: return .verifiedWithoutHostname
        case .fullVerification: return role == .client ? .verified : .verifiedWithoutHostname
        }
    }
}
