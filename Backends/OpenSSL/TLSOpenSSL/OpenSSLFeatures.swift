#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore

/// Issue-5 features over libssl: suites and groups by portable name, key logging,
/// session tickets with TLSKit-managed keys, OCSP stapling.
enum OpenSSLFeatures {
    /// The libssl name of each portable group.
    static let groupNames: [String: String] = [
        "x25519": "X25519", "secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521",
        "x448": "X448", "ffdhe2048": "ffdhe2048", "ffdhe3072": "ffdhe3072", "ffdhe4096": "ffdhe4096",
    ]

    /// NID → portable group.
    static let groupsByNID: [Int32: String] = [
        NID_X25519: "x25519", NID_X9_62_prime256v1: "secp256r1", NID_secp384r1: "secp384r1",
        NID_secp521r1: "secp521r1", NID_X448: "x448", NID_ffdhe2048: "ffdhe2048",
        NID_ffdhe3072: "ffdhe3072", NID_ffdhe4096: "ffdhe4096",
    ]

    /// Applies suites, groups, key log, tickets and OCSP settings to one SSL_CTX.
    static func configure(_ ctx: OpaquePointer, _ configuration: TLSConfiguration) throws {
        let backend = OpenSSLBackend.id
        if let suites = try configuration.resolvedCipherSuites {
            let tls13 = suites.filter { $0.version == .tls13 }.map(\.name).joined(separator: ":")
            let tls12 = suites.filter { $0.version == .tls12 }.map { String(cString: OPENSSL_cipher_name($0.name)) }
            ERR_clear_error()
            guard SSL_CTX_set_ciphersuites(ctx, tls13) == 1 else {
                throw TLSError(.unsupported, "cipher suites \(tls13) are not available: \(OpenSSLErrorQueue.drainText())", backend: backend)
            }
            if tls12.isEmpty {
                // No TLS 1.2 suite: validate() made sure TLS 1.2 is not enabled.
                _ = SSL_CTX_set_cipher_list(ctx, "aNULL:!aNULL")
                ERR_clear_error()
            } else if SSL_CTX_set_cipher_list(ctx, tls12.joined(separator: ":")) != 1 {
                throw TLSError(.unsupported, "cipher suites \(tls12) are not available: \(OpenSSLErrorQueue.drainText())", backend: backend)
            }
            // Every requested suite must really be enabled: refuse rather than drop one.
            let enabled = enabledSuiteIDs(ctx)
            for suite in suites where !enabled.contains(suite.codePoint) {
                throw TLSError(.unsupported, "cipher suite \(suite.name) is not available in \(OpenSSLBackend.libraryVersion)", backend: backend)
            }
        }
        if let groups = try configuration.resolvedGroups {
            let list = groups.compactMap { groupNames[$0.name] }.joined(separator: ":")
            ERR_clear_error()
            guard tlskit_SSL_CTX_set1_groups_list(ctx, list) == 1 else {
                throw TLSError(.unsupported, "key-exchange groups \(groups.map(\.name)) are not available: \(OpenSSLErrorQueue.drainText())", backend: backend)
            }
        }
        // Always: besides the user's key logger, a TLS 1.3 client whose verification
        // failed takes its handshake traffic secret from here to protect its alert
        // (OpenSSLConnectionEngine.deferVerificationFailure).
        SSL_CTX_set_keylog_callback(ctx, openSSLKeyLog)
        if !configuration.sessionTicketsEnabled {
            SSL_CTX_set_options(ctx, tlskit_SSL_OP_NO_TICKET())
            SSL_CTX_set_num_tickets(ctx, 0)
        } else if !configuration.sessionTicketKeys.isEmpty {
            SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, openSSLTicketKey)
        }
        if configuration.ocspResponse != nil || configuration.ocspStapling != .none {
            tlskit_SSL_CTX_set_tlsext_status_cb(ctx, openSSLStatus)
        }
    }

    private static func enabledSuiteIDs(_ ctx: OpaquePointer) -> Set<UInt16> {
        var ids = Set<UInt16>()
        guard let ciphers = SSL_CTX_get_ciphers(ctx) else { return ids }
        for index in 0..<tlskit_sk_SSL_CIPHER_num(ciphers) {
            if let cipher = tlskit_sk_SSL_CIPHER_value(ciphers, index) { ids.insert(SSL_CIPHER_get_protocol_id(cipher)) }
        }
        return ids
    }

    /// The ex_data slot holding the engine behind an `SSL`, allocated once per process
    /// (`SSL_get_ex_new_index`) rather than assuming slot 0 is free.
    static let engineIndex: Int32 = tlskit_SSL_get_ex_new_index()

    /// The engine behind an SSL (set at session creation in slot ``engineIndex``).
    static func session(_ ssl: OpaquePointer?) -> OpenSSLConnectionEngine? {
        guard let ssl, let data = SSL_get_ex_data(ssl, engineIndex) else { return nil }
        return Unmanaged<OpenSSLConnectionEngine>.fromOpaque(data).takeUnretainedValue()
    }
}

private func openSSLKeyLog(_ ssl: OpaquePointer?, _ line: UnsafePointer<CChar>?) {
    guard let line, let session = OpenSSLFeatures.session(ssl) else { return }
    session.keyLog(line)
}

/// RFC 5077 ticket protection with the configured keys: AES-256-CBC + HMAC-SHA256, the
/// first key encrypts, any key decrypts (a ticket under an older key is renewed).
private func openSSLTicketKey(
    _ ssl: OpaquePointer?, _ name: UnsafeMutablePointer<UInt8>?, _ iv: UnsafeMutablePointer<UInt8>?,
    _ cipher: OpaquePointer?, _ mac: OpaquePointer?, _ encrypt: Int32
) -> Int32 {
    guard let session = OpenSSLFeatures.session(ssl), let name, let iv, let cipher, let mac else { return -1 }
    let keys = session.configuration.sessionTicketKeys
    if encrypt == 1 {
        guard let key = keys.first, RAND_bytes(iv, 16) == 1 else { return -1 }
        return key.bytes.withUnsafeBufferPointer { bytes in
            let base = bytes.baseAddress!
            name.update(from: base, count: 16)
            guard EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nil, base + 16, iv) == 1,
                  tlskit_ticket_mac_init(mac, base + 48) == 1 else { return -1 }
            return 1
        }
    }
    for (index, key) in keys.enumerated() where key.bytes.prefix(16).elementsEqual(UnsafeBufferPointer(start: name, count: 16)) {
        return key.bytes.withUnsafeBufferPointer { bytes in
            let base = bytes.baseAddress!
            guard tlskit_ticket_mac_init(mac, base + 48) == 1,
                  EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nil, base + 16, iv) == 1 else { return -1 }
            return index == 0 ? 1 : 2
        }
    }
    return 0  // unknown key: full handshake
}

/// OCSP stapling: the server attaches its response; the client checks what it got.
private func openSSLStatus(_ ssl: OpaquePointer?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let session = OpenSSLFeatures.session(ssl) else { return -1 }
    return session.handleOCSPStatus()
}
#endif
