#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

/// One `gnutls_certificate_credentials_t`: the trust roots, CRLs and verification
/// profile of a configuration, plus a set of identities (``TLSCredential``s).
///
/// A context owns one for its primary identities and one per
/// ``TLSServerNameCredentials`` entry (GnuTLS cannot share a trust list between
/// credentials, so each gets its own copy of the roots and CRLs: client-certificate
/// verification is then the same whichever identity SNI selected).
///
/// `@unchecked Sendable`: set up in `init`, then only read; GnuTLS documents configured
/// credentials as shareable by many sessions on many threads.
final class GnuTLSCertificateCredentials: TLSPreparedCredentials, @unchecked Sendable {
    let handle: gnutls_certificate_credentials_t
    /// True when every certificate of the trust list is self-issued (known for roots
    /// the configuration names; not looked at for the system store, which would cost
    /// every context a copy of each of its certificates). A chain GnuTLS verified then
    /// ends at a self-signed root, and the partial-chain check needs no path rebuilt.
    private(set) var anchorsAreAllRoots = false

    init(configuration: TLSConfiguration, identities: [TLSCredential]) throws {
        var handleOrNil: gnutls_certificate_credentials_t?
        let allocated = gnutls_certificate_allocate_credentials(&handleOrNil)
        guard allocated >= 0, let handle = handleOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_certificate_allocate_credentials", allocated)
        }
        self.handle = handle
        // From here on, deinit frees the handle.

        // Pins instead of chain verification: the chain is never verified, so roots and
        // CRLs are not loaded (as on OpenSSL).
        if configuration.certificateVerification != .insecureNoVerification
            && configuration.pinningMode == .inAdditionToChainVerification {
            try loadTrustRoots(configuration.trustRoots)
            if configuration.trustRoots != .system { anchorsAreAllRoots = trustListIsAllSelfIssued() }
            try loadRevocationLists(configuration.certificateRevocationLists)
        }
        for identity in identities {
            try load(identity)
        }
    }

    deinit {
        gnutls_certificate_free_credentials(handle)
    }

    // MARK: - Trust roots and CRLs

    /// Walks the loaded trust list once: true when it holds certificates and each is its
    /// own issuer.
    private func trustListIsAllSelfIssued() -> Bool {
        var trust: gnutls_x509_trust_list_t?
        gnutls_certificate_get_trust_list(handle, &trust)
        guard let trust else { return false }
        var iterator: gnutls_x509_trust_list_iter_t?
        defer { if iterator != nil { gnutls_x509_trust_list_iter_deinit(iterator) } }
        var seen = 0
        while true {
            var certificate: gnutls_x509_crt_t?
            let result = gnutls_x509_trust_list_iter_get_ca(trust, &iterator, &certificate)
            if result == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE { return seen > 0 }
            guard result >= 0, let certificate else { return false }
            defer { gnutls_x509_crt_deinit(certificate) }
            guard GnuTLSChainPath.isSelfIssued(certificate) else { return false }
            seen += 1
        }
    }

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
            try check(gnutls_certificate_set_x509_system_trust(handle), "the system trust store")
        case .caFile(let path):
            try check(gnutls_certificate_set_x509_trust_file(handle, path, GNUTLS_X509_FMT_PEM), path)
        case .caDirectory(let path):
            try check(gnutls_certificate_set_x509_trust_dir(handle, path, GNUTLS_X509_FMT_PEM), path)
        case .certificates(let sources):
            for (index, source) in sources.enumerated() {
                let bytes = try Self.bytes(of: source, code: .badCertificate, what: "trust root")
                let what: String
                if case .file(let path) = source { what = path } else { what = "trust root #\(index + 1) (in memory)" }
                let result = GnuTLS.withDatum(bytes) {
                    gnutls_certificate_set_x509_trust_mem(handle, $0, Self.format(of: bytes))
                }
                try check(result, what)
            }
        }
    }

    /// CRLs are added without GNUTLS_TL_VERIFY_CRL: that flag would refuse a CRL whose
    /// issuer is an intermediate (not a trust anchor). They come from the application's
    /// own configuration, and a CRL can only take trust away.
    private func loadRevocationLists(_ sources: [TLSDataSource]) throws {
        for (index, source) in sources.enumerated() {
            let bytes = try Self.bytes(of: source, code: .badCertificate, what: "CRL")
            let name = Self.name(of: source, "CRL #\(index + 1)")
            let result = GnuTLS.withDatum(bytes) {
                gnutls_certificate_set_x509_crl_mem(handle, $0, Self.format(of: bytes))
            }
            if result < 0 {
                throw GnuTLS.error(.badCertificate, "loading the \(name)", result)
            }
            if result == 0 {
                throw GnuTLS.error(.badCertificate, "no CRL (PEM or DER) found in the \(name)")
            }
        }
    }

    // MARK: - Identities

    private func load(_ credential: TLSCredential) throws {
        switch credential {
        case .certificateChain(let chain, let key, let passphrase):
            try loadChain(chain, key: key, passphrase: passphrase)
        case .pkcs12(let source, let password):
            try loadPKCS12(source, password: password)
        }
    }

    /// A chain (PEM with intermediates, or one DER certificate) and its key (PEM PKCS#8
    /// or traditional, possibly encrypted; or DER PKCS#8, possibly encrypted). Each part
    /// is parsed alone so that the error names the part that is bad.
    private func loadChain(_ chain: TLSDataSource, key: TLSDataSource, passphrase: String?) throws {
        let chainBytes = try Self.bytes(of: chain, code: .badCertificate, what: "certificate chain")
        let keyBytes = try Self.bytes(of: key, code: .badPrivateKey, what: "private key")
        let chainName = Self.name(of: chain, "certificate chain")
        let keyName = Self.name(of: key, "private key")

        let certificates = try Self.importCertificates(chainBytes, name: chainName)
        defer { certificates.forEach { gnutls_x509_crt_deinit($0) } }
        let privateKey = try Self.importPrivateKey(keyBytes, name: keyName, passphrase: passphrase)
        defer { gnutls_x509_privkey_deinit(privateKey) }
        try Self.checkSecurityLevel(certificates, name: chainName)
        try add(certificates, privateKey,
                mismatch: "the \(keyName) does not belong to the first certificate of the \(chainName)",
                what: "the \(chainName) and \(keyName)")
    }

    /// Adds one identity (GnuTLS copies the certificates and key), checking that the key
    /// is the leaf's.
    private func add(_ certificates: [gnutls_x509_crt_t], _ key: gnutls_x509_privkey_t,
                     mismatch: String, what: String) throws {
        // Checked here first: on a mismatch gnutls_certificate_set_x509_key (3.7.9) leaks the
        // private-key copy it made (found by the configuration fuzzer under LeakSanitizer).
        guard let leaf = certificates.first, Self.keyID(ofCertificate: leaf) == Self.keyID(ofPrivateKey: key) else {
            throw GnuTLS.error(.keyCertificateMismatch, mismatch)
        }
        var list: [gnutls_x509_crt_t?] = certificates
        let result = gnutls_certificate_set_x509_key(handle, &list, Int32(list.count), key)
        if result == GNUTLS_E_CERTIFICATE_KEY_MISMATCH {
            throw GnuTLS.error(.keyCertificateMismatch, mismatch, result)
        }
        if result < 0 {
            throw GnuTLS.error(.badCertificate, "loading \(what)", result)
        }
    }

    /// SHA-256 key ID of a certificate's public key, nil if it cannot be computed.
    private static func keyID(ofCertificate certificate: gnutls_x509_crt_t) -> [UInt8]? {
        var id = [UInt8](repeating: 0, count: 64)
        var size = id.count
        guard gnutls_x509_crt_get_key_id(certificate, UInt32(GNUTLS_KEYID_USE_SHA256.rawValue), &id, &size) >= 0 else { return nil }
        return Array(id.prefix(size))
    }

    /// SHA-256 key ID of a private key's public half, nil if it cannot be computed.
    private static func keyID(ofPrivateKey key: gnutls_x509_privkey_t) -> [UInt8]? {
        var id = [UInt8](repeating: 0, count: 64)
        var size = id.count
        guard gnutls_x509_privkey_get_key_id(key, UInt32(GNUTLS_KEYID_USE_SHA256.rawValue), &id, &size) >= 0 else { return nil }
        return Array(id.prefix(size))
    }

    /// Our own chain must meet the 112-bit level the peer's chain is held to, as OpenSSL's
    /// security level 2 refuses to use it (`ee key too small`, `ca md too weak`): RSA/DSA
    /// keys of at least 2048 bits, and no signature with SHA-1 or weaker except on a
    /// self-signed certificate. GnuTLS itself would present such a chain.
    static func checkSecurityLevel(_ certificates: [gnutls_x509_crt_t], name: String) throws {
        for (index, certificate) in certificates.enumerated() {
            let which = index == 0 ? "the certificate" : "certificate #\(index + 1)"
            var bits: UInt32 = 0
            let algorithm = gnutls_x509_crt_get_pk_algorithm(certificate, &bits)
            if algorithm >= 0 {
                let pk = gnutls_pk_algorithm_t(rawValue: UInt32(algorithm))
                let level = gnutls_pk_bits_to_sec_param(pk, bits)
                if level.rawValue < GNUTLS_SEC_PARAM_MEDIUM.rawValue {
                    let pkName = gnutls_pk_get_name(pk).map { String(cString: $0) } ?? "public"
                    throw GnuTLS.error(.badCertificate,
                        "\(which) of the \(name) has a \(bits)-bit \(pkName) key, below 112-bit security (at least 2048 bits needed)")
                }
            }
            if gnutls_x509_crt_check_issuer(certificate, certificate) != 0 { continue }
            let signature = gnutls_x509_crt_get_signature_algorithm(certificate)
            if signature >= 0 {
                let hash = gnutls_sign_get_hash_algorithm(gnutls_sign_algorithm_t(rawValue: UInt32(signature)))
                if hash == GNUTLS_DIG_SHA1 || hash == GNUTLS_DIG_MD5 || hash == GNUTLS_DIG_MD2 {
                    let hashName = gnutls_digest_get_name(hash).map { String(cString: $0) } ?? "weak"
                    throw GnuTLS.error(.badCertificate,
                        "\(which) of the \(name) is signed with \(hashName), below 112-bit security")
                }
            }
        }
    }

    /// Every certificate of a PEM text (at least one), or the one of DER bytes.
    private static func importCertificates(_ bytes: [UInt8], name: String) throws -> [gnutls_x509_crt_t] {
        if TLSDataSource.isPEM(bytes) {
            var list: UnsafeMutablePointer<gnutls_x509_crt_t?>?
            var count: UInt32 = 0
            let parsed = GnuTLS.withDatum(bytes) {
                gnutls_x509_crt_list_import2(&list, &count, $0, GNUTLS_X509_FMT_PEM, 0)
            }
            var certificates: [gnutls_x509_crt_t] = []
            if let list {
                for index in 0..<Int(count) { if let crt = list[index] { certificates.append(crt) } }
                GnuTLS.free(list)
            }
            if parsed < 0 || certificates.isEmpty {
                certificates.forEach { gnutls_x509_crt_deinit($0) }
                throw GnuTLS.error(.badCertificate, "parsing the PEM \(name)",
                                   parsed < 0 ? parsed : GNUTLS_E_NO_CERTIFICATE_FOUND)
            }
            return certificates
        }
        var certificateOrNil: gnutls_x509_crt_t?
        let initialised = gnutls_x509_crt_init(&certificateOrNil)
        guard initialised >= 0, let certificate = certificateOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_x509_crt_init", initialised)
        }
        let imported = GnuTLS.withDatum(bytes) { gnutls_x509_crt_import(certificate, $0, GNUTLS_X509_FMT_DER) }
        if imported < 0 {
            gnutls_x509_crt_deinit(certificate)
            throw GnuTLS.error(.badCertificate, "parsing the \(name) (neither PEM nor a DER certificate)", imported)
        }
        return [certificate]
    }

    /// A private key, PEM or DER, decrypted with `passphrase` when it is encrypted.
    ///
    /// `gnutls_x509_privkey_import2` tries, in turn, the raw (traditional or PKCS#8
    /// plain) forms, encrypted PKCS#8, PKCS#12 and OpenSSL's encrypted traditional PEM
    /// (`Proc-Type: 4,ENCRYPTED`). Its errors for a missing or wrong passphrase vary
    /// with the form, so whether the key is encrypted is decided here first.
    static func importPrivateKey(_ bytes: [UInt8], name: String, passphrase: String?) throws -> gnutls_x509_privkey_t {
        let format = format(of: bytes)
        let encrypted = isEncryptedKey(bytes, format: format)
        if encrypted && passphrase == nil {
            throw GnuTLS.error(.badPassphrase, "the \(name) is encrypted and no passphrase was given")
        }
        var keyOrNil: gnutls_x509_privkey_t?
        let initialised = gnutls_x509_privkey_init(&keyOrNil)
        guard initialised >= 0, let key = keyOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_x509_privkey_init", initialised)
        }
        // A passphrase given for a plain key is ignored, as OpenSSL does.
        let secret = encrypted ? passphrase : nil
        let flags = UInt32(secret == nil ? GNUTLS_PKCS_PLAIN.rawValue : 0)
        let imported = GnuTLS.withDatum(bytes) { datum in
            if let secret {
                return gnutls_x509_privkey_import2(key, datum, format, secret, flags)
            }
            return gnutls_x509_privkey_import2(key, datum, format, nil, flags)
        }
        if imported < 0 {
            gnutls_x509_privkey_deinit(key)
            if encrypted {
                throw GnuTLS.error(.badPassphrase, "the \(name) could not be decrypted: wrong passphrase", imported)
            }
            let form = format == GNUTLS_X509_FMT_PEM ? "PEM" : "DER (neither PEM nor a DER PKCS#8 key)"
            throw GnuTLS.error(.badPrivateKey, "parsing the \(form) \(name)", imported)
        }
        return key
    }

    /// True for encrypted PKCS#8 (PEM `ENCRYPTED PRIVATE KEY` or DER
    /// EncryptedPrivateKeyInfo) and OpenSSL's encrypted traditional PEM.
    private static func isEncryptedKey(_ bytes: [UInt8], format: gnutls_x509_crt_fmt_t) -> Bool {
        if format == GNUTLS_X509_FMT_PEM {
            let text = String(decoding: bytes, as: UTF8.self)
            if text.contains("Proc-Type: 4,ENCRYPTED") { return true }
            if !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") { return false }
        }
        var schema: UInt32 = 0, cipher: UInt32 = 0
        let info = GnuTLS.withDatum(bytes) {
            gnutls_pkcs8_info($0, format, &schema, &cipher, nil, nil, nil, nil)
        }
        return info >= 0
    }

    /// A PKCS#12 bundle, DER or PEM-armoured (`-----BEGIN PKCS12-----`).
    private func loadPKCS12(_ source: TLSDataSource, password: String) throws {
        let bytes = try Self.bytes(of: source, code: .badCertificate, what: "PKCS#12 bundle")
        let name = Self.name(of: source, "PKCS#12 bundle")
        let format = Self.format(of: bytes)

        // Parse and check the MAC first: a wrong password is then told apart from a
        // bundle that is not PKCS#12 at all.
        var bundleOrNil: gnutls_pkcs12_t?
        let initialised = gnutls_pkcs12_init(&bundleOrNil)
        guard initialised >= 0, let bundle = bundleOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_pkcs12_init", initialised)
        }
        defer { gnutls_pkcs12_deinit(bundle) }
        let imported = GnuTLS.withDatum(bytes) { gnutls_pkcs12_import(bundle, $0, format, 0) }
        if imported < 0 {
            throw GnuTLS.error(.badCertificate, "parsing the \(name)", imported)
        }
        let mac = gnutls_pkcs12_verify_mac(bundle, password)
        if mac == GNUTLS_E_MAC_VERIFY_FAILED {
            throw GnuTLS.error(.badPassphrase, "the \(name) could not be opened: wrong password", mac)
        }

        // What gnutls_certificate_set_x509_simple_pkcs12_mem does, in steps, so that our
        // chain can be checked like any other.
        var keyOrNil: gnutls_x509_privkey_t?
        var chain: UnsafeMutablePointer<gnutls_x509_crt_t?>?
        var chainSize: UInt32 = 0
        var extras: UnsafeMutablePointer<gnutls_x509_crt_t?>?
        var extrasSize: UInt32 = 0
        var crl: gnutls_x509_crl_t?
        let parsed = gnutls_pkcs12_simple_parse(bundle, password, &keyOrNil, &chain, &chainSize,
                                                &extras, &extrasSize, &crl, 0)
        var certificates: [gnutls_x509_crt_t] = []
        if let chain {
            for index in 0..<Int(chainSize) { if let crt = chain[index] { certificates.append(crt) } }
            GnuTLS.free(chain)
        }
        defer {
            certificates.forEach { gnutls_x509_crt_deinit($0) }
            if let keyOrNil { gnutls_x509_privkey_deinit(keyOrNil) }
            if let extras {
                for index in 0..<Int(extrasSize) { if let crt = extras[index] { gnutls_x509_crt_deinit(crt) } }
                GnuTLS.free(extras)
            }
            if let crl { gnutls_x509_crl_deinit(crl) }
        }
        switch parsed {
        case _ where parsed >= 0:
            break
        case GNUTLS_E_DECRYPTION_FAILED, GNUTLS_E_MAC_VERIFY_FAILED:
            throw GnuTLS.error(.badPassphrase, "the \(name) could not be opened: wrong password", parsed)
        case GNUTLS_E_CERTIFICATE_KEY_MISMATCH:
            throw GnuTLS.error(.keyCertificateMismatch, "the key in the \(name) does not belong to its certificate", parsed)
        default:
            throw GnuTLS.error(.badCertificate, "reading the key and certificates of the \(name)", parsed)
        }
        guard let key = keyOrNil, !certificates.isEmpty else {
            throw GnuTLS.error(.badCertificate, "the \(name) holds no key and certificate")
        }
        try Self.checkSecurityLevel(certificates, name: name)
        try add(certificates, key, mismatch: "the key in the \(name) does not belong to its certificate",
                what: "the \(name)")
    }

    // MARK: - Helpers

    private static func format(of bytes: [UInt8]) -> gnutls_x509_crt_fmt_t {
        TLSDataSource.isPEM(bytes) ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER
    }

    static func name(of source: TLSDataSource, _ what: String) -> String {
        if case .file(let path) = source { return "\(what) \(path)" }
        return "\(what) (in memory)"
    }

    static func bytes(of source: TLSDataSource, code: TLSError.Code, what: String) throws -> [UInt8] {
        try source.load(backend: GnuTLSBackend.id, code: code, what: what)
    }
}
#endif
