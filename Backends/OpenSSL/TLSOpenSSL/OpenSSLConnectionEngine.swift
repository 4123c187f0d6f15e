// Why one file of 400+ lines: the engine's stored state (the SSL, the deferred TLS 1.3
// verification verdict, the handshake secret for a protected alert, the sent alert) is
// private to the class and read by nearly every method, from the libssl calls to the
// negotiated values; split into extensions it would have to become module-visible.
#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore

/// One `SSL` object. Each method is one libssl call with the error queue cleared before
/// it and the result classified after it; the contract's state rules are TLSConnection's.
final class OpenSSLConnectionEngine: TLSConnectionEngine {
    private let ssl: OpaquePointer
    let transport: TLSTransportIO
    private let context: OpenSSLContextEngine
    private let role: TLSRole
    var isClient: Bool { role == .client }
    /// The last alert the peer sent (level, description), seen through the info callback.
    var receivedAlert: (level: UInt8, description: UInt8)?
    /// The fatal alert libssl (or ``sendFatalAlert(_:)``) wrote, if any.
    var sentAlert: TLSAlert?
    /// Server: the identities the core's selector chose (their `SSL_CTX` is also
    /// referenced by the `SSL`; kept for the SNI callback to leave it in place).
    var selectedCredentials: OpenSSLPreparedCredentials?
    /// Host-name and pin rules, checked from the verify callback (without the host name
    /// once a custom verifier is installed: it checks the name after its callback).
    var policy: TLSPeerPolicy
    /// The custom verification of this connection, asked from `openSSLCertificateVerify`.
    var customVerifier: TLSCustomVerifier?
    /// True when certificates are accepted whatever the chain (insecureNoVerification).
    let acceptAnyCertificate: Bool
    /// The failure the verify or OCSP callback found in TLSKit's own checks, with its
    /// reason and the alert libssl sends for it.
    var policyFailure: (TLSError.VerificationFailure, String, TLSAlert)?
    /// The chain error (`X509_V_ERR_*`) and depth at which the verify callback failed the
    /// handshake: what a verification failure is classified from, whatever else the
    /// error queue holds (a bad RSA signature also queues padding errors first).
    var chainFailure: (code: Int32, depth: Int32)?
    /// The configuration (for the callbacks: key log, tickets, OCSP).
    let configuration: TLSConfiguration
    /// A KeyUpdate scheduled with SSL_key_update whose sending was interrupted.
    private var keyUpdatePending = false
    /// A TLS 1.3 client's verification failure (in `chainFailure` or `policyFailure`),
    /// held until libssl has its handshake write keys; see ``deferVerificationFailure()``.
    /// While set, the transport BIO refuses every record libssl writes but an alert.
    private(set) var verificationFailureDeferred = false
    /// Set while TLSKit's own verdict is computed for a custom verification callback:
    /// its failures are recorded for the callback, never deferred nor sent.
    var computingDefaultVerdict = false
    /// The client handshake traffic secret (RFC 8446 §7.1), taken from libssl's key-log
    /// line once it derives it, and only while a verification failure is deferred.
    private var clientHandshakeSecret: [UInt8]?

    init(context: OpenSSLContextEngine, role: TLSRole, transport: TLSTransportIO, serverName: String?) throws {
        let backend = OpenSSLBackend.id
        let configuration = context.configuration
        let policy = TLSPeerPolicy(configuration: configuration, role: role, serverName: serverName)
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else {
            throw TLSError(.internalError, "SSL_new: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        self.ssl = ssl
        self.transport = transport
        self.context = context
        self.role = role
        self.policy = policy
        self.configuration = configuration
        self.acceptAnyCertificate = configuration.certificateVerification == .insecureNoVerification

        guard let bio = BIO_new(OpenSSLTransportBIO.method) else {
            SSL_free(ssl)
            throw TLSError(.internalError, "BIO_new: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())  // the SSL never outlives the engine
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)  // the SSL owns the BIO (one reference for both directions)
        SSL_set_ex_data(ssl, OpenSSLFeatures.engineIndex, Unmanaged.passUnretained(self).toOpaque())
        SSL_set_info_callback(ssl, openSSLInfoCallback)

        switch role {
        case .client:
            SSL_set_connect_state(ssl)
            try configureClient(configuration, serverName: serverName)
        case .server:
            SSL_set_accept_state(ssl)
            configureServer(configuration)
        }
    }

    deinit { SSL_free(ssl) }

    func install(customVerifier: TLSCustomVerifier) {
        self.customVerifier = customVerifier
        policy = policy.withoutHostname
    }

    private func configureClient(_ configuration: TLSConfiguration, serverName: String?) throws {
        let backend = OpenSSLBackend.id
        if let sni = TLSHostName.sniName(serverName), tlskit_SSL_set_tlsext_host_name(ssl, sni) != 1 {
            throw TLSError(.invalidConfiguration, "cannot set SNI \(sni): \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
        // Chain verification is libssl's; the host name and pins are TLSPeerPolicy's,
        // applied in the verify callback so that a mismatch fails the handshake with
        // the alert libssl picks for the error set there.
        let mode = configuration.certificateVerification == .insecureNoVerification ? SSL_VERIFY_NONE : SSL_VERIFY_PEER
        SSL_set_verify(ssl, mode, openSSLVerifyCallback)
        if configuration.ocspStapling != .none {
            tlskit_SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp)
        }
        let alpn = configuration.alpnWireFormat
        if !alpn.isEmpty, SSL_set_alpn_protos(ssl, alpn, UInt32(alpn.count)) != 0 {
            throw TLSError(.invalidConfiguration, "cannot set ALPN: \(OpenSSLErrorQueue.drainText())", backend: backend)
        }
    }

    private func configureServer(_ configuration: TLSConfiguration) {
        let request: Int32
        switch configuration.clientAuthentication {
        case .none: request = SSL_VERIFY_NONE
        case .optional: request = SSL_VERIFY_PEER
        case .required: request = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        }
        SSL_set_verify(ssl, request, openSSLVerifyCallback)
    }

    // MARK: - One libssl call each

    func handshake() -> TLSEngineStatus {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if verificationFailureDeferred { return finishDeferredVerification(result) }
        if result == 1 { return .success(1) }
        // OpenSSL 3.0 reports a close_notify received mid-handshake as a failure (-1,
        // SSL_ERROR_SSL); the manual, and TLSKit, call it a controlled shutdown.
        if let alert = receivedAlert, alert.description == 0 {
            ERR_clear_error()
            return .closeNotify
        }
        return classify(result)
    }

    /// Called by the verify and OCSP callbacks when a check fails: true when the verdict
    /// is to be deferred (the callback then lets libssl go on), false when it is to fail
    /// the handshake at once.
    ///
    /// Why: libssl 3.0's TLS 1.3 client verifies the server's chain while it processes
    /// the Certificate message, but installs its handshake write keys only when it writes
    /// its own Certificate or Finished (`tls_construct_client_certificate`,
    /// `tls_construct_finished`; 3.2 installs them right after the ServerHello). A
    /// failure there goes out as a plaintext alert record, which the server — already
    /// reading with the client's handshake keys — cannot decrypt: BoringSSL and GnuTLS
    /// report a bad record MAC instead of unknown_ca or bad_certificate.
    ///
    /// So a TLS 1.3 client lets libssl finish reading the server's flight
    /// (CertificateVerify, Finished) and start its own; libssl then derives the client
    /// handshake traffic secret (captured from the key-log callback, ``keyLog(_:)``) and
    /// writes its flight, which the transport BIO refuses — nothing of it reaches the
    /// peer, and the handshake cannot complete. ``finishDeferredVerification(_:)``
    /// reports the failure and sends its alert protected with that secret. TLS 1.2
    /// clients and servers fail at once: their alert is due unprotected (TLS 1.2) or
    /// they have their keys (a TLS 1.3 server).
    func deferVerificationFailure() -> Bool {
        guard role == .client, !computingDefaultVerdict, SSL_version(ssl) == TLS1_3_VERSION else { return false }
        verificationFailureDeferred = true
        return true
    }

    /// One line of libssl's key log (`SSL_CTX_set_keylog_callback`, installed on every
    /// context): the user's key logger's, and the client handshake traffic secret while
    /// a verification failure is deferred.
    func keyLog(_ line: UnsafePointer<CChar>) {
        if verificationFailureDeferred, clientHandshakeSecret == nil {
            let fields = String(cString: line).split(separator: " ")
            if fields.count == 3, fields[0] == "CLIENT_HANDSHAKE_TRAFFIC_SECRET" {
                clientHandshakeSecret = OpenSSLRecordProtection.bytes(hex: fields[2])
            }
        }
        configuration.keyLogger?.log(String(cString: line))
    }

    /// The handshake step of a TLS 1.3 client whose verification failed (see
    /// ``deferVerificationFailure()``): want-read while the server's flight is still
    /// arriving; then the failure, never success, with the category's alert sent
    /// protected with the client handshake traffic secret (libssl's own alert instead,
    /// if it failed on something else first — it was sent unprotected, as before).
    private func finishDeferredVerification(_ result: Int32) -> TLSEngineStatus {
        if result != 1, SSL_get_error(ssl, result) == SSL_ERROR_WANT_READ { return .wantRead }
        guard let error = verificationError() else {  // set with the flag: cannot happen
            return .failure(TLSError(.internalError, "a deferred verification failure was lost", backend: OpenSSLBackend.id))
        }
        _ = OpenSSLErrorQueue.drainText()
        let alert = error.alert ?? .badCertificate
        if sentAlert == nil {
            var record = TLSWire.alertRecord(alert)
            if let secret = clientHandshakeSecret,
               let cipher = SSL_get_pending_cipher(ssl) ?? SSL_get_current_cipher(ssl),
               let protected = OpenSSLRecordProtection.tls13AlertRecord(alert, secret: secret, cipher: cipher) {
                record = protected
            }
            let written = record.withUnsafeBytes { transport.write($0) }
            if case .transferred(let count) = written, count == record.count { sentAlert = alert }
        }
        var failure = error
        failure.alert = sentAlert ?? alert
        return .failure(failure)
    }

    /// libssl's own fatal alert when it sent one. It sends none for input that is not
    /// TLS at all (`SSL_AD_NO_ALERT`, e.g. an HTTP request) and has no call to send an
    /// arbitrary alert: then one unprotected alert record is written (this happens
    /// before keys exist, where alerts are plaintext; once libssl has keys it detects
    /// every violation of the wire reader itself and sends the alert protected).
    /// Server: switches to the `SSL_CTX` of the identities the core's selector chose,
    /// before libssl has read the ClientHello (the SNI callback then keeps it).
    func useServerCredentials(_ prepared: any TLSPreparedCredentials) throws {
        guard let prepared = prepared as? OpenSSLPreparedCredentials else {
            throw TLSError(.internalError, "credentials prepared by another backend", backend: OpenSSLBackend.id)
        }
        guard SSL_set_SSL_CTX(ssl, prepared.ctx) != nil else {
            throw TLSError(.internalError, "SSL_set_SSL_CTX: \(OpenSSLErrorQueue.drainText())", backend: OpenSSLBackend.id)
        }
        selectedCredentials = prepared
    }

    func sendFatalAlert(_ alert: TLSAlert) -> TLSAlert? {
        if let sentAlert { return sentAlert }
        let written = TLSWire.alertRecord(alert).withUnsafeBytes { transport.write($0) }
        guard case .transferred(7) = written else { return nil }
        sentAlert = alert
        return alert
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSEngineStatus {
        ERR_clear_error()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        return result > 0 ? .success(Int(result)) : classify(result)
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSEngineStatus {
        ERR_clear_error()
        let result = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        return result > 0 ? .success(Int(result)) : classify(result)
    }

    func sendCloseNotify() -> TLSEngineStatus {
        ERR_clear_error()
        let result = SSL_shutdown(ssl)
        return result >= 0 ? .success(1) : classify(result)
    }

    /// `SSL_get_error` and the error queue, as a TLSKit status.
    private func classify(_ result: Int32) -> TLSEngineStatus {
        let backend = OpenSSLBackend.id
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closeNotify
        case SSL_ERROR_WANT_RETRY_VERIFY: return .wantRetryVerify
        case SSL_ERROR_SYSCALL:
            return .failure(TLSError(.transportFailure, "transport failure: \(OpenSSLErrorQueue.drainText())", backend: backend))
        default:
            break
        }
        if let alert = receivedAlert, alert.level == 2 {
            let tlsAlert = TLSAlert(alert.description)
            return .failure(TLSError(
                .alertReceived, "the peer sent the fatal alert \(tlsAlert): \(OpenSSLErrorQueue.drainText())",
                backend: backend, alert: tlsAlert))
        }
        let reason = OpenSSLErrorQueue.firstReason
        let verifyResult = SSL_get_verify_result(ssl)
        if let error = verificationError() {
            _ = OpenSSLErrorQueue.drainText()
            return .failure(error)
        }
        if reason == SSL_R_CERTIFICATE_VERIFY_FAILED, verifyResult != X509_V_OK {
            let text = String(cString: X509_verify_cert_error_string(verifyResult))
            _ = OpenSSLErrorQueue.drainText()
            return .failure(TLSError(
                .certificateVerificationFailed, "certificate verify failed: \(text)", backend: backend,
                verificationFailure: Self.verificationFailure(Int32(verifyResult)),
                alert: Self.verificationFailure(Int32(verifyResult)).alert))
        }
        if reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE {
            return .failure(TLSError(
                .certificateVerificationFailed, "the client sent no certificate: \(OpenSSLErrorQueue.drainText())",
                backend: backend, verificationFailure: .noCertificate,
                // What libssl sent, by the core's rule for the version.
                alert: sentAlert ?? TLSAlert.certificateRequired.inVersion(SSL_version(ssl) == TLS1_3_VERSION ? .tls13 : .tls12)))
        }
        if reason > SSL_AD_REASON_OFFSET, reason < SSL_AD_REASON_OFFSET + 256 {
            let alert = TLSAlert(UInt8(reason - SSL_AD_REASON_OFFSET))
            return .failure(TLSError(
                .alertReceived, "the peer sent the fatal alert \(alert): \(OpenSSLErrorQueue.drainText())",
                backend: backend, alert: alert))
        }
        if reason == SSL_R_UNEXPECTED_EOF_WHILE_READING {
            return .failure(TLSError(.unexpectedEOF, OpenSSLErrorQueue.drainText(), backend: backend))
        }
        return .failure(TLSError(.protocolFailure, OpenSSLErrorQueue.drainText(), backend: backend))
    }

    /// The failure the verify or OCSP callback recorded, if any: TLSKit's own checks
    /// (host name, pins, OCSP) first, then the chain.
    private func verificationError() -> TLSError? {
        let backend = OpenSSLBackend.id
        if let (failure, explanation, alert) = policyFailure {
            return TLSError(.certificateVerificationFailed, "certificate verify failed: \(explanation)",
                            backend: backend, verificationFailure: failure, alert: alert)
        }
        if let (code, depth) = chainFailure {
            let text = String(cString: X509_verify_cert_error_string(Int(code)))
            let failure = Self.verificationFailure(code)
            return TLSError(
                .certificateVerificationFailed, "certificate verify failed: \(text) (X509_V_ERR \(code), depth \(depth))",
                backend: backend, verificationFailure: failure, alert: failure.alert)
        }
        return nil
    }

    /// The category of an `X509_V_ERR_*` code, the same on both backends.
    static func verificationFailure(_ code: Int32) -> TLSError.VerificationFailure {
        switch code {
        case X509_V_ERR_CERT_HAS_EXPIRED: return .expired
        case X509_V_ERR_CERT_NOT_YET_VALID: return .notYetValid
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: return .hostnameMismatch
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return .selfSigned
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
             X509_V_ERR_CERT_UNTRUSTED:
            return .unknownIssuer
        case X509_V_ERR_INVALID_CA, X509_V_ERR_KEYUSAGE_NO_CERTSIGN, X509_V_ERR_PATH_LENGTH_EXCEEDED:
            return .invalidCA
        case X509_V_ERR_PERMITTED_VIOLATION, X509_V_ERR_EXCLUDED_VIOLATION, X509_V_ERR_SUBTREE_MINMAX:
            return .nameConstraintsViolation
        case X509_V_ERR_CERT_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE,
             X509_V_ERR_EE_KEY_TOO_SMALL, X509_V_ERR_CA_KEY_TOO_SMALL, X509_V_ERR_CA_MD_TOO_WEAK:
            return .badSignature
        case X509_V_ERR_INVALID_PURPOSE: return .invalidPurpose
        case X509_V_ERR_CERT_REVOKED: return .revoked
        default: return .other
        }
    }

    // MARK: - After the handshake

    var negotiatedVersion: TLSVersion? {
        switch SSL_version(ssl) {
        case TLS1_3_VERSION: return .tls13
        case TLS1_2_VERSION: return .tls12
        default: return nil
        }
    }

    var cipherSuite: String? {
        guard let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_standard_name(cipher) else { return nil }
        return String(cString: name)
    }

    var negotiatedApplicationProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    var peerCertificateChain: [[UInt8]] {
        var result: [[UInt8]] = []
        // On a server the chain OpenSSL keeps excludes the leaf; on a client it includes it.
        if role == .server, let leaf = SSL_get0_peer_certificate(ssl) {
            result.append(OpenSSLPEM.der(leaf))
        }
        if let chain = SSL_get_peer_cert_chain(ssl) {
            for index in 0..<tlskit_sk_X509_num(chain) {
                if let cert = tlskit_sk_X509_value(chain, index) { result.append(OpenSSLPEM.der(cert)) }
            }
        }
        return result
    }

    var negotiatedGroup: TLSGroup? {
        let nid = tlskit_SSL_get_negotiated_group(ssl)
        return OpenSSLFeatures.groupsByNID[nid].flatMap(TLSGroup.named)
    }

    var isSessionReused: Bool { SSL_session_reused(ssl) == 1 }

    var exportedSession: [UInt8]? {
        guard role == .client, let session = SSL_get1_session(ssl) else { return nil }
        defer { SSL_SESSION_free(session) }
        guard SSL_SESSION_is_resumable(session) == 1 else { return nil }
        let length = i2d_SSL_SESSION(session, nil)
        guard length > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(length))
        bytes.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_SSL_SESSION(session, &cursor)
        }
        return bytes
    }

    /// The session is decoded once per ``TLSSession`` (`d2i_SSL_SESSION` parses the
    /// server's certificate: a third of a resumed handshake) and each connection gets
    /// its own copy: libssl marks the `SSL_SESSION` it used not-resumable when that
    /// connection ends without close_notify, which must not spoil the shared one.
    func resume(from session: TLSSession) -> Bool {
        let decoded = session.decoded.value(as: OpenSSLDecodedSession.self) {
            OpenSSLDecodedSession(bytes: session.bytes)
        }
        guard let decoded, let copy = SSL_SESSION_dup(decoded.pointer) else { ERR_clear_error(); return false }
        defer { SSL_SESSION_free(copy) }
        return SSL_set_session(ssl, copy) == 1
    }

    func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: length)
        let labelBytes = Array(label.utf8)
        let contextBytes = context ?? []
        let ok = SSL_export_keying_material(ssl, &output, length, label, labelBytes.count,
                                            contextBytes, contextBytes.count, context == nil ? 0 : 1)
        ERR_clear_error()
        return ok == 1 ? output : nil
    }

    func requestKeyUpdate(updatePeer: Bool) -> TLSEngineStatus {
        ERR_clear_error()
        if !keyUpdatePending {
            guard SSL_key_update(ssl, updatePeer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) == 1 else {
                return .failure(TLSError(.protocolFailure, "SSL_key_update: \(OpenSSLErrorQueue.drainText())", backend: OpenSSLBackend.id))
            }
            keyUpdatePending = true
        }
        // libssl writes the KeyUpdate message on the next handshake step.
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            keyUpdatePending = false
            return .success(1)
        }
        return classify(result)
    }

    var localCertificate: [UInt8]? {
        SSL_get_certificate(ssl).map { OpenSSLPEM.der($0) }
    }

    /// The OCSP status callback: the server staples its response; the client judges the
    /// staple (and its absence when one is required). A refusal here makes libssl send
    /// bad_certificate_status_response, whatever the reason.
    func handleOCSPStatus() -> Int32 {
        if role == .server {
            guard let response = configuration.ocspResponse else { return SSL_TLSEXT_ERR_NOACK }
            let ok = response.withUnsafeBufferPointer {
                tlskit_SSL_set_tlsext_status_ocsp_resp_copy(ssl, $0.baseAddress, $0.count)
            }
            return ok == 1 ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_ALERT_FATAL
        }
        var bytes: UnsafePointer<UInt8>?
        let length = tlskit_SSL_get_tlsext_status_ocsp_resp(ssl, &bytes)
        let staple = bytes.flatMap { bytes in
            length > 0 ? OpenSSLOCSP.check(response: Array(UnsafeBufferPointer(start: bytes, count: length)), ssl: ssl) : nil
        }
        guard let refusal = TLSOCSPRefusal.judge(staple, stapling: configuration.ocspStapling) else { return 1 }
        policyFailure = (refusal.failure, refusal.reason, refusal.alert)
        return deferVerificationFailure() ? 1 : 0
    }

    var requestedServerName: String? {
        guard role == .server, let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else { return nil }
        return String(cString: name)
    }
}

/// An `SSL_SESSION` decoded from ``TLSSession/bytes``, never given to a connection
/// itself (connections get `SSL_SESSION_dup` copies), so only read after `init`.
/// `@unchecked Sendable`: the pointer is immutable and the `SSL_SESSION` only read.
final class OpenSSLDecodedSession: @unchecked Sendable {
    let pointer: OpaquePointer

    init?(bytes: [UInt8]) {
        ERR_clear_error()
        let decoded: OpaquePointer? = bytes.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_SSL_SESSION(nil, &cursor, buffer.count)
        }
        guard let decoded else { ERR_clear_error(); return nil }
        pointer = decoded
    }

    deinit { SSL_SESSION_free(pointer) }
}
#endif
