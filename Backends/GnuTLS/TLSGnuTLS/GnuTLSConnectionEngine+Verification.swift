#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

/// Certificate verification inside the handshake (chain, TLSPeerPolicy, OCSP staple),
/// SNI credential selection and the ClientHello check: the C callbacks land here.
extension GnuTLSConnectionEngine {
    /// Verifies the peer's chain against the context's trust roots during the handshake,
    /// with its extended key usage; then the leaf against ``TLSPeerPolicy`` (host name,
    /// pins).
    ///
    /// Our own callback rather than `gnutls_session_set_verify_cert`: that one fails an
    /// optional client authentication when the client sends no certificate, and it
    /// keeps the status where a failure in `gnutls_certificate_verify_peers` is lost.
    func setVerification(purpose: UnsafePointer<CChar>) {
        let data = UnsafeMutablePointer<gnutls_typed_vdata_st>.allocate(capacity: 1)
        data[0] = gnutls_typed_vdata_st(
            type: GNUTLS_DT_KEY_PURPOSE_OID,
            data: UnsafeMutablePointer(mutating: UnsafeRawPointer(purpose).assumingMemoryBound(to: UInt8.self)),
            size: 0)
        verifyData = data
        verifyDataCount = 1
        gnutls_session_set_verify_function(session, gnuTLSVerifyPeer)
    }

    /// Called by GnuTLS once the peer's Certificate message is in. Chain failures come
    /// first (as in OpenSSL's verifier); the host name and pins are checked only on a
    /// chain that verified, or alone when pins replace chain verification.
    ///
    /// With a custom verifier, TLSKit's verdict is computed once and handed to it, and its
    /// outcome decides. A pending answer returns GNUTLS_E_AGAIN: GnuTLS 3.7.9's handshake
    /// state machines (TLS 1.2 and 1.3, both roles) return any error below -1 from
    /// `_gnutls_run_verify_callback` as it is, without changing their state, so the next
    /// `gnutls_handshake` runs this function again, which then finds the answer.
    func verifyPeer() -> Int32 {
        var count: UInt32 = 0
        guard let list = gnutls_certificate_get_peers(session, &count), count > 0 else {
            // No certificate: fine when the client certificate is optional. When it is
            // required GnuTLS has already refused the handshake before calling us.
            if role == .server && context.configuration.clientAuthentication != .required { return 0 }
            verifyStatus = nil
            return GNUTLS_E_NO_CERTIFICATE_FOUND
        }
        guard let customVerifier, verifyChain else { return defaultVerification(list, count) }
        let outcome = customVerifier.evaluate(
            peerCertificates: { (0..<Int(count)).map { GnuTLS.copy(list[$0]) } },
            defaultFailure: {
                let result = defaultVerification(list, count)
                defer { (ocspFailure, policyFailure, verifyStatus, verifyError) = (nil, nil, nil, nil) }
                return result == 0 ? nil : defaultFailure(result)
            },
            backend: GnuTLSBackend.id)
        switch outcome {
        case .accept:
            return 0
        case .reject(let failure, let reason, let alert):
            policyFailure = (failure, reason, alert)
            return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
        case .pending:
            suspendedForVerification = true
            return GNUTLS_E_AGAIN
        }
    }

    /// TLSKit's own verification of the peer's certificates (OCSP staple, chain, partial
    /// chains, then the leaf against ``policy``): 0, or the error with the reason recorded.
    func defaultVerification(_ list: UnsafePointer<gnutls_datum_t>, _ count: UInt32) -> Int32 {
        if role == .client && configuration.ocspStapling != .none {
            if let failure = checkStaple(chain: (0..<Int(count)).map { GnuTLS.copy(list[$0]) }) {
                ocspFailure = failure
                return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
            }
        }
        if !policy.pinsOnly && verifyChain {
            var status: UInt32 = 0
            let result = gnutls_certificate_verify_peers(session, verifyData, verifyDataCount, &status)
            if result < 0 {
                verifyStatus = nil
                verifyError = result
                return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
            }
            verifyStatus = status
            if status != 0 { return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR }
            if !configuration.trustsPartialChains && !anchorsAreAllRoots() && !chainPath(list, count).reachesTrustedRoot {
                // GnuTLS takes any certificate of the trust list as an anchor; TLSKit's
                // default, like OpenSSL's, wants a self-signed root: report what GnuTLS
                // reports when the anchor is missing (OpenSSL: UNABLE_TO_GET_ISSUER_CERT_LOCALLY).
                verifyStatus = GNUTLS_CERT_INVALID.rawValue | GNUTLS_CERT_SIGNER_NOT_FOUND.rawValue
                return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
            }
        }
        let leaf = UnsafeRawBufferPointer(start: list[0].data, count: Int(list[0].size))
        if let (failure, reason) = policy.check(leafDER: leaf, sha256: GnuTLSCertificateParser.sha256) {
            policyFailure = (failure, reason, nil)
            return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
        }
        return 0
    }

    /// The category and explanation of a failed ``defaultVerification(_:_:)``, as
    /// ``verificationFailed(_:)`` would report it (nothing is sent).
    func defaultFailure(_ code: Int32) -> (TLSError.VerificationFailure, String) {
        let (failure, text, _) = classifyVerification(code)
        let prefix = "certificate verification failed: "
        return (failure, text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text)
    }

    /// Client: the server's OCSP staple (or its absence), judged by the core's rule;
    /// nil when acceptable.
    ///
    /// Checked before the chain: GnuTLS's own check inside
    /// `gnutls_certificate_verify_peers` would report a revoked staple as
    /// GNUTLS_CERT_REVOKED and silently ignore one it cannot verify, where the core's
    /// rule refuses both with bad_certificate_status_response.
    func checkStaple(chain: [[UInt8]]) -> TLSOCSPRefusal? {
        var datum = gnutls_datum_t(data: nil, size: 0)
        let staple = gnutls_ocsp_status_request_get(session, &datum) >= 0 && datum.size > 0
            ? GnuTLSFeatures.checkOCSP(response: GnuTLS.copy(datum), chain: chain, trust: context.credentials)
            : nil
        return TLSOCSPRefusal.judge(staple, stapling: configuration.ocspStapling)
    }

    /// Server: called once the ClientHello is parsed. Selects the credentials of the
    /// first SNI entry that matches the name the client sent; otherwise the primary
    /// credentials (set at session creation) stay.
    func selectCredentialsForServerName() -> Int32 {
        guard selectedCredentials == nil, let name = requestedServerName, let credentials = context.credentials(forServerName: name) else {
            return 0
        }
        let result = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(credentials))
        return result < 0 ? result : 0
    }

    /// Server: the identities TLSCore's server identity selector chose, set before GnuTLS
    /// has read the ClientHello (the SNI switch that may follow is skipped: the selector
    /// has decided).
    func useServerCredentials(_ prepared: any TLSPreparedCredentials) throws {
        guard let prepared = prepared as? GnuTLSCertificateCredentials else {
            throw GnuTLS.error(.internalError, "credentials prepared by another backend")
        }
        let result = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(prepared.handle))
        guard result >= 0 else { throw GnuTLS.error(.internalError, "gnutls_credentials_set", result) }
        selectedCredentials = prepared
    }

    /// Server: called with the ClientHello body before GnuTLS processes it (read by
    /// ``TLSWire/clientHello(_:)``). Refuses a client that offers no version in our range
    /// with GNUTLS_E_UNSUPPORTED_VERSION_PACKET (alert protocol_version).
    func checkClientHello(_ message: gnutls_datum_t) -> Int32 {
        guard let data = message.data,
              let hello = TLSWire.clientHello(UnsafeRawBufferPointer(start: data, count: Int(message.size)))
        else { return 0 } // malformed: let GnuTLS report it
        offeredProtocols = hello.applicationProtocols
        let configuration = context.configuration
        let range = UInt16(configuration.minimumTLSVersion.rawValue)...UInt16(configuration.maximumTLSVersion.rawValue)
        guard hello.offersVersion(in: range) else { return GNUTLS_E_UNSUPPORTED_VERSION_PACKET }
        return selectApplicationProtocol()
    }

    /// Server with an ``TLSApplicationProtocolSelector``: asks it to choose among the
    /// client's ALPN offers, then lets GnuTLS negotiate exactly that one (MANDATORY: a
    /// client that offered ALPN gets it or no_application_protocol). Before GnuTLS reads
    /// the ClientHello, as GnuTLS has no selection callback of its own.
    func selectApplicationProtocol() -> Int32 {
        guard let selector = configuration.applicationProtocolSelector, let offered = offeredProtocols else { return 0 }
        guard let chosen = selector.select(offered) else { return GNUTLS_E_NO_APPLICATION_PROTOCOL }
        var name = Array(chosen.utf8)
        return name.withUnsafeMutableBufferPointer { buffer in
            var datum = gnutls_datum_t(data: buffer.baseAddress, size: UInt32(buffer.count))
            let result = gnutls_alpn_set_protocols(session, &datum, 1,
                UInt32(GNUTLS_ALPN_SERVER_PRECEDENCE.rawValue | GNUTLS_ALPN_MANDATORY.rawValue))
            return result < 0 ? result : 0
        }
    }

    /// No certificate from the peer although one is required.
    func noCertificate(_ code: Int32) -> TLSError {
        let failure = TLSError.VerificationFailure.noCertificate
        let sent = sendFatalAlert(failure.alert)
        return GnuTLS.error(.certificateVerificationFailed, "the peer sent no certificate", code,
                            verificationFailure: failure, alert: sent ?? failure.alert)
    }

    /// The peer's certificate was rejected: category, GnuTLS's own explanation, alert sent.
    func verificationFailed(_ code: Int32) -> TLSError {
        let (failure, text, alert) = classifyVerification(code)
        let sent = sendFatalAlert(alert)
        return TLSError(.certificateVerificationFailed, text, backend: GnuTLSBackend.id,
                        verificationFailure: failure, alert: sent ?? alert)
    }

    /// The category of a rejected certificate, the message, and the alert to send.
    func classifyVerification(_ code: Int32) -> (TLSError.VerificationFailure, String, TLSAlert) {
        if let refusal = ocspFailure {
            return (refusal.failure, "certificate verification failed: \(refusal.reason)", refusal.alert)
        }
        if let (failure, explanation, alert) = policyFailure {
            return (failure, "certificate verification failed: \(explanation)", alert ?? failure.alert)
        }
        guard let status = verifyStatus else {
            let failure = TLSError.VerificationFailure.other
            let error = GnuTLS.error(.certificateVerificationFailed, "the peer's certificate chain could not be verified",
                                     verifyError ?? code, verificationFailure: failure, alert: failure.alert)
            return (failure, error.message, failure.alert)
        }
        var failure = Self.category(of: status)
        if status & Self.untrustedBits != 0 && peerChainIsSingleSelfIssued() { failure = .selfSigned }
        // One bit for three causes: tell a name-constraints violation from an issuer not
        // allowed to sign (no keyCertSign, path length exceeded), as OpenSSL's codes do.
        if failure == .invalidCA && status & GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE.rawValue != 0 {
            var count: UInt32 = 0
            if let list = gnutls_certificate_get_peers(session, &count), chainPath(list, count).violatesNameConstraints {
                failure = .nameConstraintsViolation
            }
        }

        var text = "certificate verification failed"
        var printed = gnutls_datum_t(data: nil, size: 0)
        if gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &printed, 0) >= 0 {
            let bytes = GnuTLS.consume(&printed)
            if !bytes.isEmpty { text = String(decoding: bytes, as: UTF8.self) }
        }
        return (failure, text, failure.alert)
    }

    /// One category for GnuTLS's status bits, picked in the order OpenSSL's verifier
    /// meets them: chain building, purpose, host name, revocation, signatures, times.
    static func category(of status: UInt32) -> TLSError.VerificationFailure {
        func has(_ flag: gnutls_certificate_status_t) -> Bool { status & flag.rawValue != 0 }
        if has(GNUTLS_CERT_SIGNER_NOT_FOUND) { return .unknownIssuer }
        // NOT_CA: CA:FALSE issuer. CONSTRAINTS_FAILURE: no keyCertSign, path length
        // exceeded, or a name constraint (told apart in verificationFailed).
        if has(GNUTLS_CERT_SIGNER_NOT_CA) || has(GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE) { return .invalidCA }
        if has(GNUTLS_CERT_PURPOSE_MISMATCH) { return .invalidPurpose }
        if has(GNUTLS_CERT_UNEXPECTED_OWNER) { return .hostnameMismatch }
        if has(GNUTLS_CERT_REVOKED) { return .revoked }
        if has(GNUTLS_CERT_SIGNATURE_FAILURE) || has(GNUTLS_CERT_INSECURE_ALGORITHM) { return .badSignature }
        if has(GNUTLS_CERT_EXPIRED) { return .expired }
        if has(GNUTLS_CERT_NOT_ACTIVATED) { return .notYetValid }
        return .other
    }

    /// Status bits that mean "no trusted issuer": for a lone self-issued certificate they
    /// all say "self-signed and not trusted" (GnuTLS finds a trusted certificate with the
    /// same subject and reports a signature or CA failure instead of "signer not found").
    static let untrustedBits = GNUTLS_CERT_SIGNER_NOT_FOUND.rawValue | GNUTLS_CERT_SIGNER_NOT_CA.rawValue
        | GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE.rawValue | GNUTLS_CERT_SIGNATURE_FAILURE.rawValue

    /// The path GnuTLS verified for the peer's certificates, with the trust list of the
    /// credentials this session uses (SNI may have selected other ones).
    func chainPath(_ list: UnsafePointer<gnutls_datum_t>, _ count: UInt32) -> GnuTLSChainPath {
        var credentials: UnsafeMutableRawPointer?
        var trust: gnutls_x509_trust_list_t?
        if gnutls_credentials_get(session, GNUTLS_CRD_CERTIFICATE, &credentials) >= 0, let credentials {
            gnutls_certificate_get_trust_list(OpaquePointer(credentials), &trust)
        }
        return GnuTLSChainPath(peer: list, count: Int(count), trust: trust)
    }

    /// True when every anchor of this session's trust list is a self-issued root: a
    /// verified chain then reaches a root, and ``chainPath(_:_:)`` is not needed.
    func anchorsAreAllRoots() -> Bool {
        var credentials: UnsafeMutableRawPointer?
        guard gnutls_credentials_get(session, GNUTLS_CRD_CERTIFICATE, &credentials) >= 0, let credentials else {
            return false
        }
        if let selected = selectedCredentials, OpaquePointer(credentials) == selected.handle {
            return selected.anchorsAreAllRoots
        }
        return context.anchorsAreAllRoots(OpaquePointer(credentials))
    }

    /// True when the peer sent exactly one certificate and it is its own issuer.
    func peerChainIsSingleSelfIssued() -> Bool {
        var count: UInt32 = 0
        guard let list = gnutls_certificate_get_peers(session, &count), count == 1 else { return false }
        var certificate: gnutls_x509_crt_t?
        guard gnutls_x509_crt_init(&certificate) >= 0, let certificate else { return false }
        defer { gnutls_x509_crt_deinit(certificate) }
        guard gnutls_x509_crt_import(certificate, list, GNUTLS_X509_FMT_DER) >= 0 else { return false }
        return gnutls_x509_crt_check_issuer(certificate, certificate) != 0
    }
}
#endif
