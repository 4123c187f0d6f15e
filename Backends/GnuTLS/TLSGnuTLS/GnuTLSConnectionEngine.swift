#if GnuTLS
internal import CGnuTLS
@_spi(TLSWire) @_spi(TLSBackendImplementation) internal import TLSCore

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// One `gnutls_session_t`, driven one call at a time by ``TLSConnection``.
///
/// The GnuTLS transport pointer is this object (unretained: the session owns the
/// `gnutls_session_t`, so it outlives every callback); the push/pull callbacks forward
/// to the ``TLSTransportIO`` and report would-block and errors with
/// `gnutls_transport_set_errno`.
final class GnuTLSConnectionEngine: TLSConnectionEngine {
    private let context: GnuTLSContextEngine
    private let role: TLSRole
    private let transport: TLSTransportIO
    private let session: gnutls_session_t
    /// The key-purpose typed data handed to GnuTLS, which keeps the pointer.
    private var verifyData: UnsafeMutablePointer<gnutls_typed_vdata_st>?
    private var verifyDataCount: UInt32 = 0
    /// Host-name and pin rules, checked on the leaf once the chain has verified.
    private let policy: TLSPeerPolicy
    /// The failure ``policy`` found, with its explanation.
    private var policyFailure: (TLSError.VerificationFailure, String)?
    /// The status bits of the last chain verification (`gnutls_certificate_verify_peers`).
    private var verifyStatus: UInt32?
    /// The error of `gnutls_certificate_verify_peers` itself (unparsable chain…), if any.
    private var verifyError: Int32?
    /// Which transport call returned would-block during the current GnuTLS call
    /// (`.wantRead` / `.wantWrite`), nil if none did. Reset before each GnuTLS call.
    private var blockedDirection: TLSEngineStatus?
    /// A no_renegotiation warning whose sending was interrupted by the transport.
    private var pendingNoRenegotiation = false
    /// False for `.insecureNoVerification`: the verify function then only judges an
    /// OCSP staple.
    private let verifyChain: Bool
    /// A stapled OCSP response that failed (or is missing while required), with why.
    private var ocspFailure: (TLSError.VerificationFailure, String)?

    /// The context's configuration (for the C callbacks: key log, OCSP).
    var configuration: TLSConfiguration { context.configuration }

    init(context: GnuTLSContextEngine, role: TLSRole, transport: TLSTransportIO, serverName: String?) throws {
        self.context = context
        self.role = role
        self.transport = transport
        let configuration = context.configuration
        self.policy = TLSPeerPolicy(configuration: configuration, role: role, serverName: serverName)
        self.verifyChain = configuration.certificateVerification != .insecureNoVerification

        var sessionOrNil: gnutls_session_t?
        var flags = UInt32(role == .client ? GNUTLS_CLIENT : GNUTLS_SERVER)
        if !configuration.sessionTicketsEnabled { flags |= UInt32(GNUTLS_NO_TICKETS) }
        let initialised = gnutls_init(&sessionOrNil, flags)
        guard initialised >= 0, let session = sessionOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_init", initialised)
        }
        self.session = session
        // From here on, deinit calls gnutls_deinit.

        func check(_ result: Int32, _ what: String) throws {
            if result < 0 { throw GnuTLS.error(.internalError, what, result) }
        }
        try check(gnutls_priority_set(session, context.priorities), "gnutls_priority_set")
        try check(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(context.credentials)),
                  "gnutls_credentials_set")

        // Transport: callbacks into TLSTransportIO, never a file descriptor.
        gnutls_transport_set_ptr(session, Unmanaged.passUnretained(self).toOpaque())
        gnutls_session_set_ptr(session, Unmanaged.passUnretained(self).toOpaque())
        gnutls_transport_set_push_function(session, gnuTLSPush)
        // On a socket, a flight of records in one sendmsg, as GnuTLS's own descriptor
        // transport does with writev. With the plain push alone GnuTLS sends record by
        // record: 11 send calls per handshake pair instead of 6 over loopback. (Other
        // transports keep the plain push: GnuTLS takes a short vector write for "try
        // again", which would hide from the caller a custom transport that blocks.)
        if transport.writesVectors {
            gnutls_transport_set_vec_push_function(session, gnuTLSVectorPush)
        }
        gnutls_transport_set_pull_function(session, gnuTLSPull)
        // GnuTLS calls the pull-timeout function before a pull only when a timeout is
        // set (handshake or record timeout, both disabled here). Its default would
        // select() on the transport pointer as if it were a descriptor, so install one
        // that says "data may be available" and let pull decide (EAGAIN → want-read).
        gnutls_transport_set_pull_timeout_function(session, gnuTLSPullTimeout)
        // No wall-clock handshake deadline: the caller drives a non-blocking handshake
        // at its own pace, as with OpenSSL.
        gnutls_handshake_set_timeout(session, 0)

        let verify = configuration.certificateVerification
        switch role {
        case .client:
            if let sni = TLSHostName.sniName(serverName) {
                let bytes = Array(sni.utf8)
                try check(bytes.withUnsafeBytes {
                    gnutls_server_name_set(session, GNUTLS_NAME_DNS, $0.baseAddress, $0.count)
                }, "gnutls_server_name_set")
            }
            // The host name is TLSPeerPolicy's (RFC 6125 rules written once), not GnuTLS's.
            // A staple is judged in the same callback, whatever the verification mode.
            if verify != .insecureNoVerification || configuration.ocspStapling != .none {
                setVerification(purpose: tlskit_gnutls_kp_tls_www_server())
            }
            if configuration.ocspStapling != .none {
                try check(gnutls_ocsp_status_request_enable_client(session, nil, 0, nil),
                          "gnutls_ocsp_status_request_enable_client")
            }
        case .server:
            // Like OpenSSL's default: do not list our trusted CAs in CertificateRequest.
            gnutls_certificate_send_x509_rdn_sequence(session, 1)
            switch configuration.clientAuthentication {
            case .none:
                gnutls_certificate_server_set_request(session, GNUTLS_CERT_IGNORE)
            case .optional:
                gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST)
            case .required:
                gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE)
            }
            if configuration.clientAuthentication != .none && verify != .insecureNoVerification {
                setVerification(purpose: tlskit_gnutls_kp_tls_www_client())
            }
            // GnuTLS reports "no version in common" as "no cipher suites in common"
            // (handshake_failure); look at the ClientHello first so that the client gets
            // protocol_version, as from OpenSSL.
            gnutls_handshake_set_hook_function(session, UInt32(GNUTLS_HANDSHAKE_CLIENT_HELLO.rawValue),
                                               GNUTLS_HOOK_PRE, gnuTLSClientHelloHook)
            // Identities chosen by SNI: switch credentials once the ClientHello is parsed.
            if !context.serverNameCredentials.isEmpty {
                gnutls_handshake_set_post_client_hello_function(session, gnuTLSPostClientHello)
            }
            // Session tickets (TLS 1.2 RFC 5077 and TLS 1.3 NewSessionTicket) under the
            // context's master key; GnuTLS copies it.
            if let key = context.ticketMasterKey {
                try check(GnuTLS.withDatum(key) { gnutls_session_ticket_enable_server(session, $0) },
                          "gnutls_session_ticket_enable_server")
            }
        }
        if configuration.keyLogger != nil {
            gnutls_session_set_keylog_function(session, gnuTLSKeyLog)
        }

        if !configuration.applicationProtocols.isEmpty {
            let names = configuration.applicationProtocols.map { Array($0.utf8) }
            var datums = names.map { name in
                name.withUnsafeBufferPointer {
                    gnutls_datum_t(data: UnsafeMutablePointer(mutating: $0.baseAddress), size: UInt32($0.count))
                }
            }
            // The datums point into `names`; keep them alive across the call (GnuTLS copies).
            // Server: our order wins; MANDATORY turns "the client offered ALPN and we share
            // no protocol" into a fatal no_application_protocol alert, as OpenSSL's
            // selection callback does (a client that offers no ALPN is still accepted).
            let alpnFlags = role == .server
                ? UInt32(GNUTLS_ALPN_SERVER_PRECEDENCE.rawValue | GNUTLS_ALPN_MANDATORY.rawValue) : 0
            let result = withExtendedLifetime(names) {
                gnutls_alpn_set_protocols(session, &datums, UInt32(datums.count), alpnFlags)
            }
            try check(result, "gnutls_alpn_set_protocols")
        }
    }

    deinit {
        gnutls_deinit(session)
        if let verifyData { verifyData.deallocate() }
    }

    /// Verifies the peer's chain against the context's trust roots during the handshake,
    /// with its extended key usage; then the leaf against ``TLSPeerPolicy`` (host name,
    /// pins).
    ///
    /// Our own callback rather than `gnutls_session_set_verify_cert`: that one fails an
    /// optional client authentication when the client sends no certificate, and it
    /// keeps the status where a failure in `gnutls_certificate_verify_peers` is lost.
    private func setVerification(purpose: UnsafePointer<CChar>) {
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
    fileprivate func verifyPeer() -> Int32 {
        var count: UInt32 = 0
        guard let list = gnutls_certificate_get_peers(session, &count), count > 0 else {
            // No certificate: fine when the client certificate is optional. When it is
            // required GnuTLS has already refused the handshake before calling us.
            if role == .server && context.configuration.clientAuthentication != .required { return 0 }
            verifyStatus = nil
            return GNUTLS_E_NO_CERTIFICATE_FOUND
        }
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
            if !configuration.trustsPartialChains && !chainPath(list, count).reachesTrustedRoot {
                // GnuTLS takes any certificate of the trust list as an anchor; TLSKit's
                // default, like OpenSSL's, wants a self-signed root: report what GnuTLS
                // reports when the anchor is missing (OpenSSL: UNABLE_TO_GET_ISSUER_CERT_LOCALLY).
                verifyStatus = GNUTLS_CERT_INVALID.rawValue | GNUTLS_CERT_SIGNER_NOT_FOUND.rawValue
                return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
            }
        }
        let leaf = UnsafeRawBufferPointer(start: list[0].data, count: Int(list[0].size))
        if let (failure, reason) = policy.check(leafDER: leaf, sha256: GnuTLSCertificateParser.sha256) {
            policyFailure = (failure, reason)
            return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
        }
        return 0
    }

    /// Client: the server's OCSP staple, judged as the OpenSSL backend's status callback
    /// does; nil when acceptable (or absent and not required).
    ///
    /// Checked before the chain: GnuTLS's own check inside
    /// `gnutls_certificate_verify_peers` would report a revoked staple as
    /// GNUTLS_CERT_REVOKED and silently ignore one it cannot verify, where OpenSSL fails
    /// with bad_certificate_status_response in both cases.
    private func checkStaple(chain: [[UInt8]]) -> (TLSError.VerificationFailure, String)? {
        var datum = gnutls_datum_t(data: nil, size: 0)
        guard gnutls_ocsp_status_request_get(session, &datum) >= 0, datum.size > 0 else {
            if configuration.ocspStapling == .require {
                return (.other, "the server sent no OCSP staple, and one is required")
            }
            return nil
        }
        switch GnuTLSFeatures.checkOCSP(response: GnuTLS.copy(datum), chain: chain, trust: context.credentials) {
        case .good: return nil
        case .revoked: return (.revoked, "the stapled OCSP response says the certificate is revoked")
        case .invalid(let reason): return (.other, "the stapled OCSP response is not acceptable: \(reason)")
        }
    }

    /// Server: called once the ClientHello is parsed. Selects the credentials of the
    /// first SNI entry that matches the name the client sent; otherwise the primary
    /// credentials (set at session creation) stay.
    fileprivate func selectCredentialsForServerName() -> Int32 {
        guard let name = requestedServerName, let credentials = context.credentials(forServerName: name) else {
            return 0
        }
        let result = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(credentials))
        return result < 0 ? result : 0
    }

    /// Protocols the client offered in ALPN, if it sent the extension.
    private var offeredProtocols: [String]?

    /// Server: called with the ClientHello body before GnuTLS processes it (read by
    /// ``TLSWire/clientHello(_:)``). Refuses a client that offers no version in our range
    /// with GNUTLS_E_UNSUPPORTED_VERSION_PACKET (alert protocol_version).
    fileprivate func checkClientHello(_ message: gnutls_datum_t) -> Int32 {
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
    private func selectApplicationProtocol() -> Int32 {
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

    // MARK: - Transport callbacks

    fileprivate func push(_ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        guard let bytes else { return fail(EINVAL) }
        return pushed(transport.write(UnsafeRawBufferPointer(start: bytes, count: count)))
    }

    fileprivate func push(vectors: UnsafePointer<giovec_t>?, _ count: Int32) -> Int {
        guard count > 0 else { return 0 }
        guard let vectors else { return fail(EINVAL) }
        return pushed(transport.write(vectors: UnsafeBufferPointer(start: vectors, count: Int(count))))
    }

    /// A transport write's result as a push function returns it.
    private func pushed(_ result: TLSIOResult) -> Int {
        switch result {
        case .transferred(let written): return written
        case .wouldBlock:
            blockedDirection = .wantWrite
            return fail(EAGAIN)
        case .endOfStream: return fail(EPIPE)
        case .failed(let error): return fail(error)
        }
    }

    fileprivate func pull(_ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        guard let buffer else { return fail(EINVAL) }
        switch transport.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: count)) {
        case .transferred(let read):
            return read
        case .wouldBlock:
            blockedDirection = .wantRead
            return fail(EAGAIN)
        case .endOfStream: return 0
        case .failed(let error): return fail(error)
        }
    }

    private func fail(_ error: Int32) -> Int {
        gnutls_transport_set_errno(session, error)
        return -1
    }

    // MARK: - Calls

    /// The direction GnuTLS was blocked in after `GNUTLS_E_AGAIN` / `GNUTLS_E_INTERRUPTED`.
    private func blocked() -> TLSEngineStatus {
        switch blockedDirection {
        case .wantWrite?: return .wantWrite
        case .wantRead?: return .wantRead
        default: return gnutls_record_get_direction(session) == 1 ? .wantWrite : .wantRead
        }
    }

    /// True when GnuTLS said "again" although the transport never blocked. GnuTLS does
    /// that after processing a TLS 1.3 post-handshake message (NewSessionTicket,
    /// KeyUpdate) in `gnutls_record_recv`, even on a blocking socket, and after a short
    /// read that ended with end-of-stream inside a record (the EOF is reported by the
    /// next call). OpenSSL carries on by itself in both cases (`SSL_MODE_AUTO_RETRY`),
    /// so the call is repeated at once.
    private var spuriousAgain: Bool { blockedDirection == nil }

    private static let maxNonFatalRetries = 64

    func handshake() -> TLSEngineStatus {
        var retries = 0
        while true {
            blockedDirection = nil
            let result = gnutls_handshake(session)
            if result == GNUTLS_E_SUCCESS {
                return .success(1)
            }
            if result < 0, gnutls_error_is_fatal(result) != 0, let alert = peerPlaintextAlert(after: result) {
                if alert == .closeNotify { return .closeNotify }
                return .failure(TLSError(.alertReceived,
                    "the peer sent a fatal alert during the handshake: \(alert) (unprotected; GnuTLS said: \(GnuTLS.describe(result)))",
                    backend: GnuTLSBackend.id, alert: alert))
            }
            switch result {
            case GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED:
                if !spuriousAgain { return blocked() }
            case GNUTLS_E_WARNING_ALERT_RECEIVED:
                if gnutls_alert_get(session) == GNUTLS_A_CLOSE_NOTIFY { return .closeNotify }
            case GNUTLS_E_SESSION_EOF:
                // The peer's close_notify arrived before the handshake completed.
                return .closeNotify
            case GNUTLS_E_FATAL_ALERT_RECEIVED:
                return .failure(alertReceived(during: "the handshake"))
            case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
                return .failure(verificationFailed(result))
            case GNUTLS_E_NO_CERTIFICATE_FOUND, GNUTLS_E_CERTIFICATE_REQUIRED:
                return .failure(noCertificate(result))
            default:
                if gnutls_error_is_fatal(result) != 0 {
                    return .failure(fatal(result, during: "the handshake"))
                }
            }
            // A non-fatal warning (a warning alert, a TLS 1.2 no_renegotiation…): go on.
            retries += 1
            if retries > Self.maxNonFatalRetries {
                return .failure(fatal(result, during: "the handshake (too many non-fatal errors)"))
            }
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSEngineStatus {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .success(0) }
        if pendingNoRenegotiation, let status = flushNoRenegotiation() { return status }
        var retries = 0
        while true {
            blockedDirection = nil
            let result = gnutls_record_recv(session, base, buffer.count)
            if result > 0 { return .success(result) }
            if result == 0 { return .closeNotify }
            let code = Int32(clamping: result)
            switch code {
            case GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED:
                if !spuriousAgain { return blocked() }
            case GNUTLS_E_REHANDSHAKE:
                // The peer asks for a renegotiation (TLS 1.2): refuse politely, keep reading.
                pendingNoRenegotiation = true
                if let status = flushNoRenegotiation() { return status }
            case GNUTLS_E_WARNING_ALERT_RECEIVED:
                if gnutls_alert_get(session) == GNUTLS_A_CLOSE_NOTIFY { return .closeNotify }
            case GNUTLS_E_SESSION_EOF:
                return .closeNotify
            case GNUTLS_E_FATAL_ALERT_RECEIVED:
                return .failure(alertReceived(during: "a read"))
            case GNUTLS_E_PREMATURE_TERMINATION:
                return .failure(GnuTLS.error(.unexpectedEOF, "the peer closed the transport without close_notify", code))
            default:
                if gnutls_error_is_fatal(code) != 0 {
                    return .failure(fatal(code, during: "a read"))
                }
            }
            retries += 1
            if retries > Self.maxNonFatalRetries {
                return .failure(fatal(code, during: "a read (too many non-fatal errors)"))
            }
        }
    }

    /// Sends (or finishes sending) the no_renegotiation warning. Returns a status to
    /// return when the transport blocks or fails, nil once it is sent.
    private func flushNoRenegotiation() -> TLSEngineStatus? {
        blockedDirection = nil
        let sent = gnutls_alert_send(session, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION)
        switch sent {
        case GNUTLS_E_SUCCESS:
            pendingNoRenegotiation = false
            return nil
        case GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED:
            return blocked()
        default:
            pendingNoRenegotiation = false
            return .failure(GnuTLS.error(.protocolFailure, "sending the no_renegotiation alert", sent))
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TLSEngineStatus {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .success(0) }
        var retries = 0
        while true {
            blockedDirection = nil
            let result = gnutls_record_send(session, base, bytes.count)
            if result > 0 { return .success(result) }
            let code = Int32(clamping: result)
            switch code {
            case GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED:
                if !spuriousAgain { return blocked() }
            default:
                if result == 0 || gnutls_error_is_fatal(code) != 0 {
                    return .failure(fatal(code, during: "a write"))
                }
            }
            retries += 1
            if retries > Self.maxNonFatalRetries {
                return .failure(fatal(code, during: "a write (too many non-fatal errors)"))
            }
        }
    }

    func sendCloseNotify() -> TLSEngineStatus {
        for _ in 0...Self.maxNonFatalRetries {
            blockedDirection = nil
            let result = gnutls_bye(session, GNUTLS_SHUT_WR)
            switch result {
            case GNUTLS_E_SUCCESS: return .success(1)
            case GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED:
                if !spuriousAgain { return blocked() }
            default: return .failure(fatal(result, during: "sending close_notify"))
            }
        }
        return .failure(GnuTLS.error(.internalError, "gnutls_bye kept returning GNUTLS_E_AGAIN without blocking"))
    }

    // MARK: - Failures

    /// The alert in the last record read, when it was an unprotected alert and GnuTLS
    /// failed on it with a record-layer error.
    ///
    /// In TLS 1.3 OpenSSL sends an alert that interrupts its handshake (a client that
    /// rejects the server's certificate) before it has handshake keys, so unprotected;
    /// OpenSSL's own server accepts such an alert in that window. GnuTLS tries to decrypt
    /// it and fails with GNUTLS_E_DECRYPTION_FAILED (and would send bad_record_mac).
    /// The peer has already given up: report its alert, send nothing back.
    private func peerPlaintextAlert(after error: Int32) -> TLSAlert? {
        switch error {
        case GNUTLS_E_DECRYPTION_FAILED, GNUTLS_E_UNEXPECTED_PACKET, GNUTLS_E_UNEXPECTED_PACKET_LENGTH,
             GNUTLS_E_RECORD_OVERFLOW, GNUTLS_E_ERROR_IN_FINISHED_PACKET:
            break
        default:
            return nil
        }
        guard let (level, description) = transport.lastPlaintextAlert else { return nil }
        if description == 0 || level == UInt8(GNUTLS_AL_FATAL.rawValue) { return TLSAlert(description) }
        return nil
    }

    /// The peer's fatal alert.
    private func alertReceived(during what: String) -> TLSError {
        let alert = gnutls_alert_get(session)
        let name = gnutls_alert_get_name(alert).map { String(cString: $0) } ?? "alert \(alert.rawValue)"
        return TLSError(.alertReceived, "the peer sent a fatal alert during \(what): \(name)",
                        backend: GnuTLSBackend.id, alert: TLSAlert(UInt8(truncatingIfNeeded: alert.rawValue)))
    }

    /// The fatal alert sent on this session, if any.
    private var sentAlert: TLSAlert?

    /// Sends a fatal alert (GnuTLS sends none of its own) unless one was sent already or
    /// the transport is broken. TLS 1.2 has no certificate_required alert:
    /// handshake_failure is sent instead, as OpenSSL does. - Returns: the alert the peer
    /// gets, or nil.
    @discardableResult
    func sendFatalAlert(_ alert: TLSAlert) -> TLSAlert? {
        if let sentAlert { return sentAlert }
        if transport.failureErrno != nil || transport.reachedEndOfStream { return nil }
        var alert = alert
        if alert == .certificateRequired && gnutls_protocol_get_version(session) != GNUTLS_TLS1_3 {
            alert = .handshakeFailure
        }
        let description = gnutls_alert_description_t(rawValue: UInt32(alert.rawValue))
        guard gnutls_alert_send(session, GNUTLS_AL_FATAL, description) == GNUTLS_E_SUCCESS else { return nil }
        sentAlert = alert
        return alert
    }

    /// A fatal local error: protocol failure, with the alert GnuTLS would pick sent to the peer.
    private func fatal(_ code: Int32, during what: String) -> TLSError {
        switch code {
        case GNUTLS_E_PUSH_ERROR, GNUTLS_E_PULL_ERROR:
            return GnuTLS.error(.transportFailure, "the transport failed during \(what)", code)
        case GNUTLS_E_PREMATURE_TERMINATION:
            return GnuTLS.error(.unexpectedEOF, "the peer closed the transport without close_notify during \(what)", code)
        default:
            break
        }
        var level: Int32 = 0
        let alertCode = gnutls_error_to_alert(code, &level)
        var alert: TLSAlert?
        if let violation = transport.wire.violation {
            // TLSCore's wire reader saw what GnuTLS failed on: its alert, as on OpenSSL.
            alert = sendFatalAlert(violation.alert)
        } else if alertCode >= 0 {
            alert = sendFatalAlert(TLSAlert(UInt8(truncatingIfNeeded: alertCode)))
        }
        var message = "\(what) failed: \(GnuTLS.describe(code))"
        if let alert { message += " (alert \(alert) sent)" }
        return TLSError(.protocolFailure, message, backend: GnuTLSBackend.id, alert: alert)
    }

    /// No certificate from the peer although one is required.
    private func noCertificate(_ code: Int32) -> TLSError {
        let failure = TLSError.VerificationFailure.noCertificate
        let sent = sendFatalAlert(failure.alert)
        return GnuTLS.error(.certificateVerificationFailed, "the peer sent no certificate", code,
                            verificationFailure: failure, alert: sent ?? failure.alert)
    }

    /// The peer's certificate was rejected: category, GnuTLS's own explanation, alert sent.
    private func verificationFailed(_ code: Int32) -> TLSError {
        if let (failure, explanation) = ocspFailure {
            // What OpenSSL's client sends when its status callback refuses the staple.
            let sent = sendFatalAlert(.badCertificateStatusResponse)
            return TLSError(.certificateVerificationFailed, "certificate verification failed: \(explanation)",
                            backend: GnuTLSBackend.id, verificationFailure: failure,
                            alert: sent ?? .badCertificateStatusResponse)
        }
        if let (failure, explanation) = policyFailure {
            let sent = sendFatalAlert(failure.alert)
            return TLSError(.certificateVerificationFailed, "certificate verification failed: \(explanation)",
                            backend: GnuTLSBackend.id, verificationFailure: failure, alert: sent ?? failure.alert)
        }
        guard let status = verifyStatus else {
            let failure = TLSError.VerificationFailure.other
            let sent = sendFatalAlert(failure.alert)
            return GnuTLS.error(.certificateVerificationFailed, "the peer's certificate chain could not be verified",
                                verifyError ?? code, verificationFailure: failure, alert: sent ?? failure.alert)
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
        let sent = sendFatalAlert(failure.alert)
        return TLSError(.certificateVerificationFailed, text, backend: GnuTLSBackend.id,
                        verificationFailure: failure, alert: sent ?? failure.alert)
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
    private func chainPath(_ list: UnsafePointer<gnutls_datum_t>, _ count: UInt32) -> GnuTLSChainPath {
        var credentials: UnsafeMutableRawPointer?
        var trust: gnutls_x509_trust_list_t?
        if gnutls_credentials_get(session, GNUTLS_CRD_CERTIFICATE, &credentials) >= 0, let credentials {
            gnutls_certificate_get_trust_list(OpaquePointer(credentials), &trust)
        }
        return GnuTLSChainPath(peer: list, count: Int(count), trust: trust)
    }

    /// True when the peer sent exactly one certificate and it is its own issuer.
    private func peerChainIsSingleSelfIssued() -> Bool {
        var count: UInt32 = 0
        guard let list = gnutls_certificate_get_peers(session, &count), count == 1 else { return false }
        var certificate: gnutls_x509_crt_t?
        guard gnutls_x509_crt_init(&certificate) >= 0, let certificate else { return false }
        defer { gnutls_x509_crt_deinit(certificate) }
        guard gnutls_x509_crt_import(certificate, list, GNUTLS_X509_FMT_DER) >= 0 else { return false }
        return gnutls_x509_crt_check_issuer(certificate, certificate) != 0
    }

    // MARK: - Negotiated parameters

    var negotiatedVersion: TLSVersion? {
        switch gnutls_protocol_get_version(session) {
        case GNUTLS_TLS1_3: return .tls13
        case GNUTLS_TLS1_2: return .tls12
        default: return nil
        }
    }

    var cipherSuite: String? {
        gnutls_ciphersuite_get(session).map { String(cString: $0) }
    }

    var negotiatedApplicationProtocol: String? {
        var selected = gnutls_datum_t(data: nil, size: 0)
        guard gnutls_alpn_get_selected_protocol(session, &selected) >= 0 else { return nil }
        let bytes = GnuTLS.copy(selected)
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    var peerCertificateChain: [[UInt8]] {
        var count: UInt32 = 0
        guard let list = gnutls_certificate_get_peers(session, &count) else { return [] }
        return (0..<Int(count)).map { GnuTLS.copy(list[$0]) }
    }

    var requestedServerName: String? {
        guard role == .server else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        var size = buffer.count
        var type: UInt32 = 0
        let result = gnutls_server_name_get(session, &buffer, &size, &type, 0)
        guard result >= 0, type == GNUTLS_NAME_DNS.rawValue, size > 0 else { return nil }
        let length = buffer[0..<min(size, buffer.count)].firstIndex(of: 0) ?? min(size, buffer.count)
        return String(decoding: buffer[0..<length], as: UTF8.self)
    }

    // MARK: - Features

    var negotiatedGroup: TLSGroup? {
        if let group = GnuTLSFeatures.group(gnutls_group_get(session)) { return group }
        // TLS 1.2 ECDHE: the curve (GnuTLS numbers EC groups like their curves).
        let curve = gnutls_ecc_curve_get(session)
        return GnuTLSFeatures.group(gnutls_group_t(rawValue: curve.rawValue))
    }

    var isSessionReused: Bool { gnutls_session_is_resumed(session) != 0 }

    /// `gnutls_session_get_data2`, once there is something to resume with: in TLS 1.3 a
    /// NewSessionTicket must have been read (GnuTLS would otherwise wait for one on the
    /// transport, up to a round trip plus 60 ms, and return a "no ticket" placeholder);
    /// in TLS 1.2 a ticket from the server, or the resumed session's own.
    var exportedSession: [UInt8]? {
        guard role == .client else { return nil }
        let ticketReceived = gnutls_session_get_flags(session) & GNUTLS_SFLAGS_SESSION_TICKET.rawValue != 0
        guard ticketReceived || (negotiatedVersion == .tls12 && isSessionReused) else { return nil }
        var datum = gnutls_datum_t(data: nil, size: 0)
        guard gnutls_session_get_data2(session, &datum) >= 0 else { return nil }
        let bytes = GnuTLS.consume(&datum)
        return bytes.isEmpty ? nil : bytes
    }

    /// `gnutls_session_set_data` unpacks the bytes itself; there is no decoded form to keep.
    func resume(from session: TLSSession) -> Bool {
        let bytes = session.bytes
        guard role == .client, !bytes.isEmpty else { return false }
        return bytes.withUnsafeBytes { gnutls_session_set_data(self.session, $0.baseAddress, $0.count) } >= 0
    }

    /// `gnutls_prf_rfc5705`: a nil context is "no context" (TLS 1.2 tells it apart from an
    /// empty one by a NULL pointer, so an empty context gets a valid one).
    func exportKeyingMaterial(label: String, context exporterContext: [UInt8]?, length: Int) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: length)
        let labelBytes = Array(label.utf8)
        let result: Int32 = labelBytes.withUnsafeBufferPointer { labelBuffer in
            output.withUnsafeMutableBufferPointer { out in
                let labelPointer = UnsafeRawPointer(labelBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                let outPointer = UnsafeMutableRawPointer(out.baseAddress!).assumingMemoryBound(to: CChar.self)
                guard let exporterContext else {
                    return gnutls_prf_rfc5705(session, labelBuffer.count, labelPointer, 0, nil, length, outPointer)
                }
                let storage = exporterContext.isEmpty ? [0] : exporterContext
                return storage.withUnsafeBufferPointer { contextBuffer in
                    gnutls_prf_rfc5705(session, labelBuffer.count, labelPointer, exporterContext.count,
                                       UnsafeRawPointer(contextBuffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                                       length, outPointer)
                }
            }
        }
        return result >= 0 ? output : nil
    }

    /// `gnutls_session_key_update`. After GNUTLS_E_AGAIN GnuTLS keeps its place (the
    /// message is built once, then only flushed), so a retry finishes the same update.
    /// GnuTLS answers the peer's update_requested by itself while reading.
    func requestKeyUpdate(updatePeer: Bool) -> TLSEngineStatus {
        for _ in 0...Self.maxNonFatalRetries {
            blockedDirection = nil
            let result = gnutls_session_key_update(session, updatePeer ? UInt32(GNUTLS_KU_PEER) : 0)
            switch result {
            case GNUTLS_E_SUCCESS: return .success(1)
            case GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED:
                if !spuriousAgain { return blocked() }
            default: return .failure(fatal(result, during: "a KeyUpdate"))
            }
        }
        return .failure(GnuTLS.error(.internalError, "gnutls_session_key_update kept returning GNUTLS_E_AGAIN without blocking"))
    }

    var localCertificate: [UInt8]? {
        guard let ours = gnutls_certificate_get_ours(session) else { return nil }
        let bytes = GnuTLS.copy(ours.pointee)
        return bytes.isEmpty ? nil : bytes
    }

    /// One secret from GnuTLS's key-log hook, as an `SSLKEYLOGFILE` line.
    fileprivate func logKey(label: String, secret: [UInt8]) {
        guard let logger = configuration.keyLogger else { return }
        var client = gnutls_datum_t(data: nil, size: 0), server = gnutls_datum_t(data: nil, size: 0)
        gnutls_session_get_random(session, &client, &server)
        logger.log(label: label, clientRandom: GnuTLS.copy(client), secret: secret)
    }
}

// MARK: - C callbacks


private func session(from pointer: UnsafeMutableRawPointer?) -> GnuTLSConnectionEngine? {
    guard let pointer else { return nil }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue()
}

private func gnuTLSPush(_ pointer: UnsafeMutableRawPointer?, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    guard let owner = session(from: pointer) else { return -1 }
    return owner.push(bytes, count)
}

private func gnuTLSVectorPush(_ pointer: UnsafeMutableRawPointer?, _ vectors: UnsafePointer<giovec_t>?, _ count: Int32) -> Int {
    guard let owner = session(from: pointer) else { return -1 }
    return owner.push(vectors: vectors, count)
}

private func gnuTLSPull(_ pointer: UnsafeMutableRawPointer?, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    guard let owner = session(from: pointer) else { return -1 }
    return owner.pull(buffer, count)
}

private func gnuTLSVerifyPeer(_ session: gnutls_session_t?) -> Int32 {
    guard let session, let pointer = gnutls_session_get_ptr(session) else { return GNUTLS_E_INTERNAL_ERROR }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue().verifyPeer()
}

private func gnuTLSPostClientHello(_ session: gnutls_session_t?) -> Int32 {
    guard let session, let pointer = gnutls_session_get_ptr(session) else { return GNUTLS_E_INTERNAL_ERROR }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue().selectCredentialsForServerName()
}

private func gnuTLSClientHelloHook(
    _ session: gnutls_session_t?, _ type: UInt32, _ when: UInt32, _ incoming: UInt32,
    _ message: UnsafePointer<gnutls_datum_t>?
) -> Int32 {
    guard let session, let message, incoming != 0, let pointer = gnutls_session_get_ptr(session) else { return 0 }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue().checkClientHello(message.pointee)
}

private func gnuTLSKeyLog(
    _ session: gnutls_session_t?, _ label: UnsafePointer<CChar>?, _ secret: UnsafePointer<gnutls_datum_t>?
) -> Int32 {
    guard let session, let label, let secret, let pointer = gnutls_session_get_ptr(session) else { return 0 }
    Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue()
        .logKey(label: String(cString: label), secret: GnuTLS.copy(secret.pointee))
    return 0
}

private func gnuTLSPullTimeout(_ pointer: UnsafeMutableRawPointer?, _ milliseconds: UInt32) -> Int32 {
    1
}
#endif
