#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

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
    let context: GnuTLSContextEngine
    let role: TLSRole
    let transport: TLSTransportIO
    let session: gnutls_session_t
    /// The key-purpose typed data handed to GnuTLS, which keeps the pointer.
    var verifyData: UnsafeMutablePointer<gnutls_typed_vdata_st>?
    var verifyDataCount: UInt32 = 0
    /// Host-name and pin rules, checked on the leaf once the chain has verified (without
    /// the host name once a custom verifier is installed: it checks the name itself).
    var policy: TLSPeerPolicy
    /// The failure ``policy`` (or the custom verifier) found, with its explanation and,
    /// from the custom verifier, the alert to send (nil: the category's).
    var policyFailure: (TLSError.VerificationFailure, String, TLSAlert?)?
    /// The custom verification of this connection, asked from ``verifyPeer()``.
    var customVerifier: TLSCustomVerifier?
    /// Set by ``verifyPeer()`` when it returned GNUTLS_E_AGAIN for a pending custom
    /// verification: the handshake call reports ``TLSEngineStatus/wantRetryVerify``.
    var suspendedForVerification = false
    /// The status bits of the last chain verification (`gnutls_certificate_verify_peers`).
    var verifyStatus: UInt32?
    /// The error of `gnutls_certificate_verify_peers` itself (unparsable chain…), if any.
    var verifyError: Int32?
    /// Which transport call returned would-block during the current GnuTLS call
    /// (`.wantRead` / `.wantWrite`), nil if none did. Reset before each GnuTLS call.
    var blockedDirection: TLSEngineStatus?
    /// A no_renegotiation warning whose sending was interrupted by the transport.
    var pendingNoRenegotiation = false
    /// Where the handshake call stands (one value instead of two flags that could not be
    /// set together).
    var handshakePhase = HandshakePhase.running
    /// Socket transports, during a handshake call: what GnuTLS pushes is held here and
    /// sent in one write before a read that would wait, or when the call returns (see
    /// ``handshake()``).
    var holdingOutput = false
    var heldOutput: [UInt8] = []
    /// Bytes read from the transport since the session began: the progress measure of
    /// ``run(_:_:classify:)``.
    var bytesPulled = 0
    /// Bytes the socket had ready at the last look (`FIONREAD`), less those read since.
    var readableBytes = 0
    /// False for `.insecureNoVerification`: the verify function then only judges an
    /// OCSP staple.
    let verifyChain: Bool
    /// A stapled OCSP response that failed (or is missing while required), with why.
    var ocspFailure: TLSOCSPRefusal?

    /// The fatal alert sent on this session, if any.
    var sentAlert: TLSAlert?

    /// Server: the identities the core's selector chose (kept alive while the session
    /// uses them: GnuTLS does not reference-count credentials).
    var selectedCredentials: GnuTLSCertificateCredentials?

    /// Protocols the client offered in ALPN, if it sent the extension.
    var offeredProtocols: [String]?

    /// The context's configuration (for the C callbacks: key log, OCSP).
    var configuration: TLSConfiguration { context.configuration }

    /// The phases of ``handshake()`` beyond `gnutls_handshake` itself.
    enum HandshakePhase {
        /// `gnutls_handshake` runs (or has not been called yet).
        case running
        /// TLS 1.3 server: `gnutls_handshake` is done and the NewSessionTickets are still
        /// to send (``sendTickets()``).
        case sendingTickets
        /// The handshake call finished with this status while held bytes were still
        /// unsent: reported once they are out.
        case finished(TLSEngineStatus)
    }

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
        // TLS 1.3 server: GnuTLS would send its NewSessionTickets right behind its own
        // Finished, before the client's Finished arrives ("early start"); it then has
        // nothing to answer that Finished with, the ACK is delayed (~40 ms), and a client
        // with Nagle on holds its first request behind it. We send them once the
        // client's Finished is in (see `sendTickets`), as OpenSSL does.
        if role == .server && configuration.sessionTicketsEnabled { flags |= GNUTLS_NO_AUTO_SEND_TICKET.rawValue }
        let initialised = gnutls_init(&sessionOrNil, flags)
        guard initialised >= 0, let session = sessionOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_init", initialised)
        }
        self.session = session
        // From here on, deinit calls gnutls_deinit.

        func check(_ result: Int32, _ what: String) throws {
            if result < 0 { throw GnuTLS.error(.internalError, what, result) }
        }
        try check(gnutls_priority_set(session, context.priorities(for: role)), "gnutls_priority_set")
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
            // Server: our order wins; MANDATORY turns "the client offered ALPN and we share
            // no protocol" into a fatal no_application_protocol alert, as OpenSSL's
            // selection callback does (a client that offers no ALPN is still accepted).
            let alpnFlags = role == .server
                ? UInt32(GNUTLS_ALPN_SERVER_PRECEDENCE.rawValue | GNUTLS_ALPN_MANDATORY.rawValue) : 0
            let names = configuration.applicationProtocols.map { Array($0.utf8) }
            let result = GnuTLS.withDatums(names) { datums, count in   // GnuTLS copies them
                gnutls_alpn_set_protocols(session, datums, count, alpnFlags)
            }
            try check(result, "gnutls_alpn_set_protocols")
        }
    }

    func install(customVerifier: TLSCustomVerifier) {
        self.customVerifier = customVerifier
        policy = policy.withoutHostname
    }

    deinit {
        gnutls_deinit(session)
        if let verifyData { verifyData.deallocate() }
    }

}
#endif
