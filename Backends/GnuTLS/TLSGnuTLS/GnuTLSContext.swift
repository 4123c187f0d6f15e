#if GnuTLS
internal import CGnuTLS
internal import TLSCore

/// The GnuTLS side of a ``TLSContext``: certificate credentials (trust roots, our chain
/// and key) and a priority cache, built once and then only read.
///
/// `@unchecked Sendable`: every stored property is set in `init` and never changed;
/// GnuTLS documents credentials and priority caches as shareable by many sessions on
/// many threads once set up.
final class GnuTLSContextEngine: TLSContextEngine, @unchecked Sendable {
    let configuration: TLSConfiguration
    let credentials: gnutls_certificate_credentials_t
    let priorities: gnutls_priority_t
    /// True when a certificate chain and key were loaded.
    let hasCertificate: Bool

    init(configuration: TLSConfiguration) throws {
        self.configuration = configuration

        var credentialsOrNil: gnutls_certificate_credentials_t?
        let allocated = gnutls_certificate_allocate_credentials(&credentialsOrNil)
        guard allocated >= 0, let credentials = credentialsOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_certificate_allocate_credentials", allocated)
        }
        var prioritiesOrNil: gnutls_priority_t?
        let priorityString = Self.priorityString(configuration)
        var errorPosition: UnsafePointer<CChar>?
        let prioritised = gnutls_priority_init2(&prioritiesOrNil, priorityString, &errorPosition, 0)
        guard prioritised >= 0, let priorities = prioritiesOrNil else {
            gnutls_certificate_free_credentials(credentials)
            throw GnuTLS.error(.internalError, "gnutls_priority_init2(\"\(priorityString)\")", prioritised)
        }
        self.credentials = credentials
        self.priorities = priorities
        self.hasCertificate = configuration.certificateChain != nil
        // From here on, deinit frees both.

        if configuration.certificateVerification != .insecureNoVerification {
            try loadTrustRoots(configuration.trustRoots)
        }
        if let chain = configuration.certificateChain, let key = configuration.privateKey {
            try loadIdentity(chain: chain, key: key)
        }
    }

    deinit {
        gnutls_priority_deinit(priorities)
        gnutls_certificate_free_credentials(credentials)
    }

    /// `NORMAL` restricted to TLS 1.2 / 1.3 within the configured range (Debian's
    /// `NORMAL` still allows TLS 1.0 and 1.1), with safe renegotiation only.
    static func priorityString(_ configuration: TLSConfiguration) -> String {
        var text = "NORMAL:-VERS-ALL"
        for version in TLSVersion.allCases.reversed()
        where version >= configuration.minimumTLSVersion && version <= configuration.maximumTLSVersion {
            text += version == .tls13 ? ":+VERS-TLS1.3" : ":+VERS-TLS1.2"
        }
        return text + ":%SAFE_RENEGOTIATION"
    }

    // MARK: - Loading

    private func loadTrustRoots(_ roots: TLSTrustRoots) throws {
        func check(_ result: Int32, _ what: String) throws {
            if result < 0 {
                throw GnuTLS.error(.badCertificate, "loading trust roots from \(what)", result)
            }
            if result == 0 {
                throw GnuTLS.error(.badCertificate, "no CA certificate found in \(what)")
            }
        }
        switch roots {
        case .system:
            try check(gnutls_certificate_set_x509_system_trust(credentials), "the system trust store")
        case .caFile(let path):
            try check(gnutls_certificate_set_x509_trust_file(credentials, path, GNUTLS_X509_FMT_PEM), path)
        case .caDirectory(let path):
            try check(gnutls_certificate_set_x509_trust_dir(credentials, path, GNUTLS_X509_FMT_PEM), path)
        case .certificates(let sources):
            if sources.isEmpty {
                throw GnuTLS.error(.badCertificate, "the trust root list is empty")
            }
            for (index, source) in sources.enumerated() {
                let bytes = try Self.bytes(of: source, code: .badCertificate, what: "trust root")
                let what: String
                if case .file(let path) = source { what = path } else { what = "trust root #\(index + 1) (in memory)" }
                let result = GnuTLS.withDatum(bytes) {
                    gnutls_certificate_set_x509_trust_mem(credentials, $0, GNUTLS_X509_FMT_PEM)
                }
                try check(result, what)
            }
        }
    }

    private func loadIdentity(chain: TLSDataSource, key: TLSDataSource) throws {
        let chainBytes = try Self.bytes(of: chain, code: .badCertificate, what: "certificate chain")
        let keyBytes = try Self.bytes(of: key, code: .badPrivateKey, what: "private key")
        let chainName = Self.name(of: chain, "certificate chain")
        let keyName = Self.name(of: key, "private key")

        // Parse each part alone first, so that the error names the part that is bad.
        var list: UnsafeMutablePointer<gnutls_x509_crt_t?>?
        var count: UInt32 = 0
        let parsed = GnuTLS.withDatum(chainBytes) {
            gnutls_x509_crt_list_import2(&list, &count, $0, GNUTLS_X509_FMT_PEM, 0)
        }
        if let list {
            for index in 0..<Int(count) { if let crt = list[index] { gnutls_x509_crt_deinit(crt) } }
            GnuTLS.free(list)
        }
        if parsed < 0 || count == 0 {
            throw GnuTLS.error(.badCertificate, "parsing the PEM \(chainName)", parsed < 0 ? parsed : GNUTLS_E_NO_CERTIFICATE_FOUND)
        }

        var privateKey: gnutls_x509_privkey_t?
        let keyInit = gnutls_x509_privkey_init(&privateKey)
        guard keyInit >= 0, let privateKey else {
            throw GnuTLS.error(.internalError, "gnutls_x509_privkey_init", keyInit)
        }
        let keyParsed = GnuTLS.withDatum(keyBytes) {
            gnutls_x509_privkey_import2(privateKey, $0, GNUTLS_X509_FMT_PEM, nil, 0)
        }
        gnutls_x509_privkey_deinit(privateKey)
        if keyParsed < 0 {
            throw GnuTLS.error(.badPrivateKey, "parsing the PEM \(keyName)", keyParsed)
        }

        let result = GnuTLS.withDatum(chainBytes) { chainDatum in
            GnuTLS.withDatum(keyBytes) { keyDatum in
                gnutls_certificate_set_x509_key_mem2(credentials, chainDatum, keyDatum, GNUTLS_X509_FMT_PEM, nil, 0)
            }
        }
        if result == GNUTLS_E_CERTIFICATE_KEY_MISMATCH {
            throw GnuTLS.error(.keyCertificateMismatch,
                               "the \(keyName) does not belong to the first certificate of the \(chainName)", result)
        }
        if result < 0 {
            throw GnuTLS.error(.badCertificate, "loading the \(chainName) and \(keyName)", result)
        }
    }

    private static func name(of source: TLSDataSource, _ what: String) -> String {
        if case .file(let path) = source { return "\(what) \(path)" }
        return "\(what) (in memory)"
    }

    private static func bytes(of source: TLSDataSource, code: TLSError.Code, what: String) throws -> [UInt8] {
        switch source {
        case .bytes(let bytes):
            return bytes
        case .file(let path):
            switch GnuTLS.readFile(path) {
            case .success(let bytes): return bytes
            case .failure(let error):
                throw GnuTLS.error(code, "cannot read the \(what) \(path): \(error.description)")
            }
        }
    }

    // MARK: - Sessions

    func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo {
        try GnuTLSCertificateParser.info(der: der)
    }

    func makeSession(role: TLSRole, transport: TLSTransportIO, serverName: String?) throws -> any TLSSessionEngine {
        if role == .server && !hasCertificate {
            throw GnuTLS.error(.invalidConfiguration, "a server needs a certificate chain and private key")
        }
        if role == .client && serverName == nil && configuration.certificateVerification == .fullVerification {
            throw GnuTLS.error(.invalidConfiguration,
                "host-name verification needs a serverName: set TLSConfiguration.serverName or "
                + "TLSConnection.serverName, or choose .noHostnameVerification explicitly")
        }
        return try GnuTLSSession(context: self, role: role, transport: transport, serverName: serverName)
    }
}
#endif
