#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

/// The GnuTLS side of a ``TLSContext``: certificate credentials (trust roots, CRLs, our
/// identities) for the primary identities and for each SNI entry, and a priority cache,
/// built once and then only read.
///
/// `@unchecked Sendable`: every stored property is set in `init` and never changed;
/// GnuTLS documents credentials and priority caches as shareable by many sessions on
/// many threads once set up.
final class GnuTLSContextEngine: TLSContextEngine, @unchecked Sendable {
    let configuration: TLSConfiguration
    /// The primary identities (``TLSConfiguration/primaryCredentials``), all in one
    /// credentials structure: GnuTLS picks among them by key type and the peer's
    /// signature algorithms.
    let primary: GnuTLSCertificateCredentials
    /// Server role: the credentials selected by SNI, in configuration order.
    let serverNameCredentials: [(entry: TLSServerNameCredentials, credentials: GnuTLSCertificateCredentials)]
    /// Client sessions' priorities: strict safe renegotiation (`%SAFE_RENEGOTIATION`), so
    /// a TLS 1.2 server that does not signal RFC 5746 is refused, as an OpenSSL 3 client
    /// refuses it (`SSL_OP_LEGACY_SERVER_CONNECT` is off since 3.0).
    let clientPriorities: gnutls_priority_t
    /// Server sessions' priorities: `%PARTIAL_RENEGOTIATION` (GnuTLS's own default, and
    /// what an OpenSSL server does): a client that does not signal RFC 5746 is served, but
    /// never renegotiated with — TLSKit refuses every renegotiation anyway. The strict mode
    /// refused TLS 1.3-only clients, which have no `renegotiation_info` to send.
    let serverPriorities: gnutls_priority_t

    /// The priority cache for a session of `role`.
    func priorities(for role: TLSRole) -> gnutls_priority_t {
        role == .client ? clientPriorities : serverPriorities
    }
    /// True when a server has something to present (primary or SNI identities).
    /// The 64-byte GnuTLS ticket master key given to every server session; nil when
    /// tickets are off. GnuTLS derives time-rotated ticket keys from it.
    let ticketMasterKey: [UInt8]?

    var credentials: gnutls_certificate_credentials_t { primary.handle }

    /// ``GnuTLSCertificateCredentials/anchorsAreAllRoots`` of the credentials `handle`
    /// (the primary ones or an SNI entry's); false for any other handle.
    func anchorsAreAllRoots(_ handle: gnutls_certificate_credentials_t) -> Bool {
        if handle == primary.handle { return primary.anchorsAreAllRoots }
        return serverNameCredentials.first { $0.credentials.handle == handle }?.credentials.anchorsAreAllRoots ?? false
    }

    /// GnuTLS 3.7 keeps at most 8 ALPN protocols (`MAX_ALPN_PROTOCOLS`), each shorter than
    /// 32 bytes (`MAX_ALPN_PROTOCOL_NAME`): it drops the 9th on without a word and refuses
    /// a longer name only when a session is made. Both are refused here, at context
    /// creation, rather than offered or accepted in part.
    static let maxApplicationProtocols = 8
    static let maxApplicationProtocolLength = 31

    init(configuration: TLSConfiguration) throws {
        let protocols = configuration.applicationProtocols
        if protocols.count > Self.maxApplicationProtocols {
            throw GnuTLS.error(.unsupported, "GnuTLS takes at most \(Self.maxApplicationProtocols) ALPN protocols, "
                + "\(protocols.count) were configured (it would drop the rest silently)")
        }
        if let long = protocols.first(where: { $0.utf8.count > Self.maxApplicationProtocolLength }) {
            throw GnuTLS.error(.unsupported, "GnuTLS takes ALPN protocol names of at most "
                + "\(Self.maxApplicationProtocolLength) bytes, got \(long.utf8.count) for \"\(TLSUntrustedText.escape(long))\"")
        }
        self.configuration = configuration
        primary = try GnuTLSCertificateCredentials(configuration: configuration,
                                                   identities: configuration.primaryCredentials)
        serverNameCredentials = try configuration.serverNameCredentials.map {
            ($0, try GnuTLSCertificateCredentials(configuration: configuration, identities: $0.credentials))
        }

        let priorityString = try Self.priorityString(configuration)
        let clientPriorities = try Self.makePriorities(priorityString + ":%SAFE_RENEGOTIATION", configuration)
        let serverPriorities: gnutls_priority_t
        do {
            serverPriorities = try Self.makePriorities(priorityString + ":%PARTIAL_RENEGOTIATION", configuration)
        } catch {
            gnutls_priority_deinit(clientPriorities)
            throw error
        }
        self.clientPriorities = clientPriorities
        self.serverPriorities = serverPriorities
        func deinitPriorities() {
            gnutls_priority_deinit(clientPriorities)
            gnutls_priority_deinit(serverPriorities)
        }
        if let suites = try configuration.resolvedCipherSuites {
            do {
                try GnuTLSFeatures.checkSuites(clientPriorities, requested: suites, configuration: configuration)
            } catch {
                deinitPriorities()
                throw error
            }
        }

        // Session tickets (server role): the configured key, or a random one per context.
        if !configuration.sessionTicketsEnabled {
            ticketMasterKey = nil
        } else if let key = configuration.sessionTicketKeys.first {
            ticketMasterKey = GnuTLSFeatures.ticketMasterKey(key)
        } else {
            do {
                ticketMasterKey = try GnuTLSFeatures.randomTicketMasterKey()
            } catch {
                deinitPriorities()
                throw error
            }
        }

        // OCSP stapling (server role): the configured response for whichever primary
        // identity is chosen, as OpenSSL's status callback does.
        if configuration.ocspResponse != nil {
            gnutls_certificate_set_ocsp_status_request_function(primary.handle, gnuTLSOCSPResponse, nil)
        }
    }

    deinit {
        gnutls_priority_deinit(clientPriorities)
        gnutls_priority_deinit(serverPriorities)
    }

    /// One priority cache; a string GnuTLS refuses is `.unsupported` when the
    /// configuration named suites or groups (one of them is not available), else
    /// `.internalError`.
    static func makePriorities(_ priorityString: String, _ configuration: TLSConfiguration) throws -> gnutls_priority_t {
        var prioritiesOrNil: gnutls_priority_t?
        var errorPosition: UnsafePointer<CChar>?
        let prioritised = gnutls_priority_init2(&prioritiesOrNil, priorityString, &errorPosition, 0)
        guard prioritised >= 0, let priorities = prioritiesOrNil else {
            let code: TLSError.Code = configuration.cipherSuites != nil || configuration.keyExchangeGroups != nil
                ? .unsupported : .internalError
            throw GnuTLS.error(code, "gnutls_priority_init2(\"\(priorityString)\")", prioritised)
        }
        return priorities
    }

    /// Server role: the credentials for the name the client sent in SNI, nil when no
    /// entry matches (the primary credentials stay).
    func credentials(forServerName name: String) -> gnutls_certificate_credentials_t? {
        serverNameCredentials.first { $0.entry.matches(name) }?.credentials.handle
    }

    /// `NORMAL` restricted to TLS 1.2 / 1.3 within the configured range (Debian's
    /// `NORMAL` still allows TLS 1.0 and 1.1), and the MEDIUM verification profile; the
    /// renegotiation keyword is added per role (``clientPriorities``, ``serverPriorities``).
    ///
    /// `%PROFILE_MEDIUM`: 112-bit security whatever `/etc/gnutls/config` says: the peer's
    /// chain must have RSA/DSA keys of at least 2048 bits and no SHA-1 signatures (the
    /// OpenSSL backend uses security level 2); a failure is GNUTLS_CERT_INSECURE_ALGORITHM
    /// (.badSignature). It must be set here, not with gnutls_certificate_set_verify_flags:
    /// the session ORs the credentials' flags with the priority's, `NORMAL` carries
    /// PROFILE_LOW (2), and 2 | 5 is 7, PROFILE_ULTRA, which refuses RSA-2048.
    ///
    /// Cipher suites and groups by portable name become `-CIPHER-ALL:+…:-MAC-ALL:+…`
    /// (`-KX-ALL:+…` for TLS 1.2 suites) and `-GROUP-ALL:+GROUP-…`; without groups the
    /// list is OpenSSL's default order, x25519 first.
    static func priorityString(_ configuration: TLSConfiguration) throws -> String {
        var keywords = ["NORMAL", "-VERS-ALL"]
        for version in TLSVersion.allCases.reversed()
        where version >= configuration.minimumTLSVersion && version <= configuration.maximumTLSVersion {
            keywords.append(version == .tls13 ? "+VERS-TLS1.3" : "+VERS-TLS1.2")
        }
        if let suites = try configuration.resolvedCipherSuites {
            keywords += try GnuTLSFeatures.suiteKeywords(suites, configuration: configuration)
        }
        keywords.append("-GROUP-ALL")
        if let groups = try configuration.resolvedGroups {
            for group in groups {
                guard let keyword = GnuTLSFeatures.groups.first(where: { $0.name == group.name })?.keyword else {
                    throw GnuTLS.error(.unsupported, "key-exchange group \(group.name) is not available in \(GnuTLSBackend.libraryVersion)")
                }
                if !keywords.contains("+" + keyword) { keywords.append("+" + keyword) }
            }
        } else {
            keywords += GnuTLSFeatures.defaultGroupKeywords.map { "+" + $0 }
        }
        return (keywords + ["%PROFILE_MEDIUM"]).joined(separator: ":")
    }

    // MARK: - Sessions

    /// Identities a server identity selector chose: one credentials structure with the
    /// configuration's trust roots and CRLs, as the primary one.
    func prepareServerCredentials(_ credentials: [TLSCredential]) throws -> any TLSPreparedCredentials {
        try GnuTLSCertificateCredentials(configuration: configuration, identities: credentials)
    }

    func makeConnectionEngine(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSConnectionEngine {
        try GnuTLSConnectionEngine(context: self, role: role, transport: transport, serverName: serverName)
    }
}

/// Server: hands GnuTLS the configured OCSP response (a copy it frees) for the staple.
private func gnuTLSOCSPResponse(
    _ session: gnutls_session_t?, _ pointer: UnsafeMutableRawPointer?, _ response: UnsafeMutablePointer<gnutls_datum_t>?
) -> Int32 {
    guard let session, let response, let owner = gnutls_session_get_ptr(session) else {
        return GNUTLS_E_NO_CERTIFICATE_STATUS
    }
    let bytes = Unmanaged<GnuTLSConnectionEngine>.fromOpaque(owner).takeUnretainedValue().configuration.ocspResponse ?? []
    guard !bytes.isEmpty, let copy = tlskit_gnutls_malloc(bytes.count) else { return GNUTLS_E_NO_CERTIFICATE_STATUS }
    bytes.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    response.pointee = gnutls_datum_t(data: copy.assumingMemoryBound(to: UInt8.self), size: UInt32(bytes.count))
    return 0
}
#endif
