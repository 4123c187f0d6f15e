#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore

// The C callbacks libssl calls for every connection (verification, alerts) and the
// BIO_METHOD carrying every transport. Each recovers its engine or transport from an
// opaque pointer and forwards.

/// The verify callback of every session: libssl's verdict on the chain first; then, on
/// the leaf, TLSKit's host-name and pin rules (``TLSPeerPolicy``). Missing CRLs are not
/// errors (a CRL is checked when one is given for that issuer), as with GnuTLS.
func openSSLVerifyCallback(_ preverified: Int32, _ store: OpaquePointer?) -> Int32 {
    guard let store,
          let sslPointer = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let data = SSL_get_ex_data(OpaquePointer(sslPointer), OpenSSLFeatures.engineIndex)
    else { return preverified }
    let session = Unmanaged<OpenSSLConnectionEngine>.fromOpaque(data).takeUnretainedValue()
    if session.acceptAnyCertificate { return 1 }
    // A TLS 1.3 client's failure is already held for later (the first one wins): the
    // rest of the chain is walked without a verdict, and the handshake never completes.
    if session.verificationFailureDeferred { return 1 }
    let policy = session.policy
    let error = X509_STORE_CTX_get_error(store)
    // A CRL is evidence of revocation when given; its absence or its own validity period
    // does not fail a chain (GnuTLS ignores a CRL's nextUpdate too).
    if preverified == 0 && (error == X509_V_ERR_UNABLE_TO_GET_CRL || error == X509_V_ERR_CRL_HAS_EXPIRED
                            || error == X509_V_ERR_CRL_NOT_YET_VALID) { return 1 }
    // Pins instead of the chain: every chain error is ignored; only the leaf's key counts.
    if preverified == 0 && !policy.pinsOnly {
        session.chainFailure = (error, X509_STORE_CTX_get_error_depth(store))
        // TLS 1.3 client: libssl has no handshake write keys yet; the verdict waits for
        // them so that the alert goes out protected (OpenSSLConnectionEngine.deferVerificationFailure).
        if session.deferVerificationFailure() { return 1 }
        // libssl picks the alert from the X509 error, and its table has none of the
        // categories' alert for these (INVALID_CA, PATH_LENGTH_EXCEEDED: unknown_ca;
        // KEYUSAGE_NO_CERTSIGN, PERMITTED_VIOLATION: certificate_unknown): set the error
        // that gives bad_certificate, as the GnuTLS backend sends. The original error
        // stays in chainFailure for the verdict.
        let failure = OpenSSLConnectionEngine.verificationFailure(error)
        if failure == .invalidCA || failure == .nameConstraintsViolation {
            X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
        }
        // A key or digest below the security level (EE_KEY_TOO_SMALL, CA_MD_TOO_WEAK…)
        // would be bad_certificate in libssl's table; the category's alert, decrypt_error
        // (what GnuTLS sends), comes from CERT_SIGNATURE_FAILURE.
        if failure == .badSignature {
            X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_SIGNATURE_FAILURE)
        }
        return 0
    }
    guard policy.checksLeaf, X509_STORE_CTX_get_error_depth(store) == 0,
          let leaf = X509_STORE_CTX_get_current_cert(store) else { return 1 }
    let der = OpenSSLPEM.der(leaf)
    let verdict = der.withUnsafeBytes { policy.check(leafDER: $0, sha256: OpenSSLCertificateParser.sha256) }
    guard let (failure, reason) = verdict else { return 1 }
    session.policyFailure = (failure, reason, failure.alert)
    if session.deferVerificationFailure() { return 1 }
    // The X509 error decides libssl's alert: both give bad_certificate, as GnuTLS sends.
    X509_STORE_CTX_set_error(store, failure == .hostnameMismatch ? X509_V_ERR_HOSTNAME_MISMATCH : X509_V_ERR_CERT_REJECTED)
    return 0
}

/// libssl's whole-chain verification step (`SSL_CTX_set_cert_verify_callback`), called
/// once per Certificate message — and again when a handshake suspended by
/// `SSL_set_retry_verify` resumes. Without a custom verifier it is `X509_verify_cert`
/// (whose per-certificate callback is ``openSSLVerifyCallback``). With one, the first run
/// computes TLSKit's own verdict (chain and pins, not the host name) and hands it to
/// ``TLSCustomVerifier``; the verifier's outcome decides:
/// - accept: 1 with `X509_V_OK`;
/// - reject: 0, with the category recorded for the error and an X509 error whose libssl
///   alert is the category's (`X509_V_ERR_CERT_REJECTED` → bad_certificate, …);
/// - pending (client): `SSL_set_retry_verify` and 1: `SSL_do_handshake` returns -1 with
///   `SSL_ERROR_WANT_RETRY_VERIFY`, and calls this again when resumed.
/// OpenSSL 3.0 honours `SSL_set_retry_verify` on the client only: its server processes
/// the client's Certificate in `tls_process_client_certificate`, which has no retry
/// state. A server whose callback has not answered by the time it returns therefore
/// cannot wait: the certificate is rejected (category `other`, bad_certificate, with a
/// message saying so). Answer synchronously on an OpenSSL server, or use the GnuTLS
/// backend, which suspends in both roles.
func openSSLCertificateVerify(_ store: OpaquePointer?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let store,
          let sslPointer = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let data = SSL_get_ex_data(OpaquePointer(sslPointer), OpenSSLFeatures.engineIndex)
    else { return X509_verify_cert(store) }
    let engine = Unmanaged<OpenSSLConnectionEngine>.fromOpaque(data).takeUnretainedValue()
    guard let verifier = engine.customVerifier, !engine.acceptAnyCertificate else { return X509_verify_cert(store) }
    let outcome = verifier.evaluate(
        peerCertificates: {
            var chain: [[UInt8]] = []
            if let sent = X509_STORE_CTX_get0_untrusted(store) {
                for index in 0..<tlskit_sk_X509_num(sent) {
                    if let cert = tlskit_sk_X509_value(sent, index) { chain.append(OpenSSLPEM.der(cert)) }
                }
            }
            if chain.isEmpty, let leaf = X509_STORE_CTX_get0_cert(store) { chain.append(OpenSSLPEM.der(leaf)) }
            return chain
        },
        defaultFailure: {
            engine.chainFailure = nil
            engine.policyFailure = nil
            // TLSKit's own verdict, for the callback: a failure is recorded, not deferred
            // (deferring is for the verdict the peer will hear, which the callback gives).
            engine.computingDefaultVerdict = true
            let verified = X509_verify_cert(store)
            defer {
                engine.computingDefaultVerdict = false
                engine.chainFailure = nil
                engine.policyFailure = nil
            }
            if let (failure, reason, _) = engine.policyFailure { return (failure, reason) }
            if let (code, depth) = engine.chainFailure {
                let text = String(cString: X509_verify_cert_error_string(Int(code)))
                return (OpenSSLConnectionEngine.verificationFailure(code), "\(text) (X509_V_ERR \(code), depth \(depth))")
            }
            if verified <= 0 {
                let code = X509_STORE_CTX_get_error(store)
                return (OpenSSLConnectionEngine.verificationFailure(code),
                        String(cString: X509_verify_cert_error_string(Int(code))))
            }
            return nil
        },
        backend: OpenSSLBackend.id)
    ERR_clear_error()
    switch outcome {
    case .accept:
        X509_STORE_CTX_set_error(store, X509_V_OK)
        return 1
    case .reject(let failure, let reason, let alert):
        engine.policyFailure = (failure, reason, alert)
        // A TLS 1.3 client's rejection waits for its write keys, as TLSKit's own does,
        // so that the alert goes out protected.
        if engine.deferVerificationFailure() {
            X509_STORE_CTX_set_error(store, X509_V_OK)
            return 1
        }
        X509_STORE_CTX_set_error(store, openSSLErrorSending(alert))
        return 0
    case .pending:
        if engine.isClient, tlskit_SSL_set_retry_verify(OpaquePointer(sslPointer)) == 1 { return 1 }
        let reason = "the custom verification callback did not answer before returning, and an OpenSSL 3.0 server "
            + "cannot suspend its handshake for it (SSL_set_retry_verify is client-only): answer synchronously "
            + "on this backend"
        engine.policyFailure = (.other, reason, .badCertificate)
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
        return 0
    }
}

/// An X509 error for which libssl's `ssl_x509err2alert` sends `alert` (one of the
/// categories' alerts; any other is bad_certificate).
private func openSSLErrorSending(_ alert: TLSAlert) -> Int32 {
    switch alert {
    case .certificateExpired: return X509_V_ERR_CERT_HAS_EXPIRED
    case .unknownCA: return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    case .certificateRevoked: return X509_V_ERR_CERT_REVOKED
    case .decryptError: return X509_V_ERR_CERT_SIGNATURE_FAILURE
    case .unsupportedCertificate: return X509_V_ERR_INVALID_PURPOSE
    default: return X509_V_ERR_CERT_REJECTED
    }
}

/// Records alerts read and written, so results are classified from what happened on
/// the wire rather than from the shutdown flags (which a fatal alert sets too).
func openSSLInfoCallback(_ ssl: OpaquePointer?, _ where: Int32, _ value: Int32) {
    guard let ssl, let data = SSL_get_ex_data(ssl, OpenSSLFeatures.engineIndex) else { return }
    let session = Unmanaged<OpenSSLConnectionEngine>.fromOpaque(data).takeUnretainedValue()
    if (`where` & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT {
        session.receivedAlert = (UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value))
    } else if (`where` & SSL_CB_WRITE_ALERT) == SSL_CB_WRITE_ALERT, value >> 8 == 2 {
        session.sentAlert = TLSAlert(UInt8(truncatingIfNeeded: value))
    }
}

/// The `BIO_METHOD` that carries every transport: reads and writes go to the
/// connection's ``TLSTransportIO`` (socket, in-memory pair or custom callbacks). The
/// BIO's data is the engine, so that a write can be refused: while a TLS 1.3 client's
/// verification failure is deferred, nothing but an alert record leaves through libssl
/// (its Certificate, CertificateVerify and Finished never reach the peer).
enum OpenSSLTransportBIO {
    // nonisolated(unsafe): an OpaquePointer is not Sendable; the BIO_METHOD is built once
    // (static let: swift_once) and never mutated afterwards, and libssl only reads it.
    nonisolated(unsafe) static let method: OpaquePointer = {
        let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "TLSKit transport")!
        BIO_meth_set_write(method) { bio, data, length in
            guard let bio, let engine = engine(bio) else { return -1 }
            tlskit_BIO_clear_retry_flags(bio)
            if engine.verificationFailureDeferred, length > 0,
               data.map({ UInt8(bitPattern: $0.pointee) }) != TLSWire.ContentType.alert.rawValue {
                return -1
            }
            switch engine.transport.write(UnsafeRawBufferPointer(start: data, count: Int(length))) {
            case .transferred(let count): return Int32(count)
            case .wouldBlock: tlskit_BIO_set_retry_write(bio); return -1
            case .endOfStream, .failed: return -1
            }
        }
        BIO_meth_set_read(method) { bio, data, length in
            guard let bio, let engine = engine(bio) else { return -1 }
            tlskit_BIO_clear_retry_flags(bio)
            switch engine.transport.read(into: UnsafeMutableRawBufferPointer(start: data, count: Int(length))) {
            case .transferred(let count): return Int32(count)
            case .wouldBlock: tlskit_BIO_set_retry_read(bio); return -1
            case .endOfStream: return 0
            case .failed: return -1
            }
        }
        BIO_meth_set_ctrl(method) { _, command, _, _ in
            // libssl flushes after each flight; the transport has no buffer of its own.
            command == BIO_CTRL_FLUSH ? 1 : 0
        }
        BIO_meth_set_create(method) { bio in
            BIO_set_init(bio, 0)
            return 1
        }
        BIO_meth_set_destroy(method) { bio in
            BIO_set_data(bio, nil)
            return 1
        }
        return method
    }()

    private static func engine(_ bio: OpaquePointer) -> OpenSSLConnectionEngine? {
        guard let data = BIO_get_data(bio) else { return nil }
        return Unmanaged<OpenSSLConnectionEngine>.fromOpaque(data).takeUnretainedValue()
    }
}
#endif
