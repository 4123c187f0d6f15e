#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

extension GnuTLSContextEngine {
    func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8] {
        GnuTLSFeatures.digest(algorithm, bytes)
    }
}

/// Protocol features over libgnutls: suites and groups by portable name (translated into
/// priority-string keywords), session-ticket keys, OCSP staples.
enum GnuTLSFeatures {
    static func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8] {
        let (id, size): (gnutls_digest_algorithm_t, Int)
        switch algorithm {
        case .sha256: (id, size) = (GNUTLS_DIG_SHA256, 32)
        case .sha384: (id, size) = (GNUTLS_DIG_SHA384, 48)
        case .sha512: (id, size) = (GNUTLS_DIG_SHA512, 64)
        }
        var output = [UInt8](repeating: 0, count: size)
        _ = bytes.withUnsafeBytes { gnutls_hash_fast(id, $0.baseAddress, $0.count, &output) }
        return output
    }

    // MARK: - Groups

    /// Portable group → GnuTLS group (and its priority keyword, `GROUP-` + the name).
    static let groups: [(name: String, id: gnutls_group_t, keyword: String)] = [
        ("x25519", GNUTLS_GROUP_X25519, "GROUP-X25519"),
        ("secp256r1", GNUTLS_GROUP_SECP256R1, "GROUP-SECP256R1"),
        ("secp384r1", GNUTLS_GROUP_SECP384R1, "GROUP-SECP384R1"),
        ("secp521r1", GNUTLS_GROUP_SECP521R1, "GROUP-SECP521R1"),
        ("x448", GNUTLS_GROUP_X448, "GROUP-X448"),
        ("ffdhe2048", GNUTLS_GROUP_FFDHE2048, "GROUP-FFDHE2048"),
        ("ffdhe3072", GNUTLS_GROUP_FFDHE3072, "GROUP-FFDHE3072"),
        ("ffdhe4096", GNUTLS_GROUP_FFDHE4096, "GROUP-FFDHE4096"),
    ]

    /// The group list used when none is configured: OpenSSL 3.0's default order (x25519
    /// first). GnuTLS's own `NORMAL` order starts with secp256r1, so two GnuTLS peers
    /// would otherwise negotiate P-256 where two OpenSSL peers negotiate x25519.
    static let defaultGroupKeywords = [
        "GROUP-X25519", "GROUP-SECP256R1", "GROUP-X448", "GROUP-SECP521R1", "GROUP-SECP384R1",
        "GROUP-FFDHE2048", "GROUP-FFDHE3072", "GROUP-FFDHE4096", "GROUP-FFDHE6144", "GROUP-FFDHE8192",
    ]

    static func group(_ id: gnutls_group_t) -> TLSGroup? {
        groups.first { $0.id == id }.flatMap { TLSGroup.named($0.name) }
    }

    // MARK: - Cipher suites

    /// One entry of GnuTLS's cipher-suite table.
    struct Suite {
        let codePoint: UInt16
        let kx: gnutls_kx_algorithm_t
        let cipher: gnutls_cipher_algorithm_t
        let mac: gnutls_mac_algorithm_t
        let isTLS13: Bool
    }

    /// Every suite libgnutls knows (`gnutls_cipher_suite_info`).
    static func suiteTable() -> [Int: Suite] {
        var table: [Int: Suite] = [:]
        var index = 0
        while true {
            var id: (UInt8, UInt8) = (0, 0)
            var kx = GNUTLS_KX_UNKNOWN, cipher = GNUTLS_CIPHER_UNKNOWN, mac = GNUTLS_MAC_UNKNOWN
            var version = GNUTLS_VERSION_UNKNOWN
            let name = withUnsafeMutableBytes(of: &id) {
                gnutls_cipher_suite_info(index, $0.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                         &kx, &cipher, &mac, &version)
            }
            guard name != nil else { break }
            table[index] = Suite(codePoint: UInt16(id.0) << 8 | UInt16(id.1), kx: kx, cipher: cipher, mac: mac,
                                 isTLS13: version == GNUTLS_TLS1_3)
            index += 1
        }
        return table
    }

    /// The priority-string keywords for the configured suites: GnuTLS enables the cross
    /// product kx × cipher × MAC, so the exact set is checked afterwards
    /// (``checkSuites(_:requested:configuration:)``).
    static func suiteKeywords(_ suites: [TLSCipherSuite], configuration: TLSConfiguration) throws -> [String] {
        let table = suiteTable().values
        var ciphers: [String] = [], macs: [String] = [], kxs: [String] = []
        func add(_ name: UnsafePointer<CChar>?, to list: inout [String]) {
            guard let name else { return }
            let text = String(cString: name)
            if !list.contains(text) { list.append(text) }
        }
        for suite in suites {
            guard let entry = table.first(where: { $0.codePoint == suite.codePoint }) else {
                throw TLSError(.unsupported, "cipher suite \(suite.name) is not available in \(GnuTLSBackend.libraryVersion)",
                               backend: GnuTLSBackend.id)
            }
            add(gnutls_cipher_get_name(entry.cipher), to: &ciphers)
            add(gnutls_mac_get_name(entry.mac), to: &macs)
            if !entry.isTLS13 { add(gnutls_kx_get_name(entry.kx), to: &kxs) }
        }
        var keywords = ["-CIPHER-ALL"] + ciphers.map { "+" + $0 } + ["-MAC-ALL"] + macs.map { "+" + $0 }
        // TLS 1.3 suites have no key exchange of their own; the TLS 1.2 ones name it.
        // Without a TLS 1.2 suite TLS 1.2 is off (validate()), and the kx list stays.
        if !kxs.isEmpty { keywords += ["-KX-ALL"] + kxs.map { "+" + $0 } }
        return keywords
    }

    /// Refuses a priority cache whose negotiable suites differ from the requested ones:
    /// a suite requested but missing, or one enabled without being asked for.
    static func checkSuites(_ priorities: gnutls_priority_t, requested: [TLSCipherSuite],
                            configuration: TLSConfiguration) throws {
        let table = suiteTable()
        let tls13 = configuration.maximumTLSVersion >= .tls13
        let tls12 = configuration.minimumTLSVersion <= .tls12
        var enabled: [UInt16] = []
        var index: UInt32 = 0
        while true {
            var suiteIndex: UInt32 = 0
            let result = gnutls_priority_get_cipher_suite_index(priorities, index, &suiteIndex)
            index += 1
            if result == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE { break }
            guard result >= 0, let suite = table[Int(suiteIndex)] else { continue }
            if suite.isTLS13 ? tls13 : tls12 { enabled.append(suite.codePoint) }
        }
        let wanted = Set(requested.map(\.codePoint))
        if let missing = requested.first(where: { !enabled.contains($0.codePoint) }) {
            throw TLSError(.unsupported, "cipher suite \(missing.name) is not available in \(GnuTLSBackend.libraryVersion)",
                           backend: GnuTLSBackend.id)
        }
        let extra = enabled.filter { !wanted.contains($0) }
        if !extra.isEmpty {
            let names = extra.map { code in
                TLSCipherSuite.all.first { $0.codePoint == code }?.name ?? ianaName(code, table: table)
            }
            throw TLSError(.unsupported,
                "GnuTLS cannot express exactly the cipher suites \(requested.map(\.name).joined(separator: ", ")): "
                + "its priority strings enable every combination of the key exchanges, ciphers and MACs named, "
                + "so it would also enable \(names.joined(separator: ", ")). Request those too (where TLSKit names "
                + "them), or drop the suites whose cipher or key exchange brings them in "
                + "(\(GnuTLSBackend.id) backend)", backend: GnuTLSBackend.id)
        }
    }

    /// GnuTLS's name for a suite TLSKit does not name (`TLS_ECDHE_ECDSA_AES_256_CCM`…).
    private static func ianaName(_ code: UInt16, table: [Int: Suite]) -> String {
        guard let (index, _) = table.first(where: { $0.value.codePoint == code }) else {
            return "suite 0x" + TLSHex.encode([UInt8(code >> 8), UInt8(code & 0xFF)])
        }
        var id: (UInt8, UInt8) = (0, 0)
        let name = withUnsafeMutableBytes(of: &id) {
            gnutls_cipher_suite_info(index, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, nil, nil, nil)
        }
        return name.map { String(cString: $0) } ?? "suite 0x" + TLSHex.encode([UInt8(code >> 8), UInt8(code & 0xFF)])
    }

    // MARK: - Session tickets

    /// GnuTLS's ticket master key (64 bytes, what `gnutls_session_ticket_key_generate`
    /// makes): SHA-512 of the whole 80-byte ``TLSSessionTicketKey``, so that every
    /// context given the same key derives the same master key, and hence the same
    /// time-rotated ticket keys, and accepts the others' tickets.
    static func ticketMasterKey(_ key: TLSSessionTicketKey) -> [UInt8] {
        digest(.sha512, Array("TLSKit GnuTLS ticket master key".utf8) + key.bytes)
    }

    /// A fresh random master key, for a server given no ``TLSSessionTicketKey``.
    static func randomTicketMasterKey() throws -> [UInt8] {
        var datum = gnutls_datum_t(data: nil, size: 0)
        let result = gnutls_session_ticket_key_generate(&datum)
        guard result >= 0 else { throw GnuTLS.error(.internalError, "gnutls_session_ticket_key_generate", result) }
        defer { if let data = datum.data { memset(data, 0, Int(datum.size)) } }
        return GnuTLS.consume(&datum)
    }

    // MARK: - OCSP

    /// Judges a stapled OCSP response for `leaf` as OpenSSL's `OCSP_basic_verify` +
    /// `OCSP_resp_find_status` + `OCSP_check_validity(…, 300, -1)` do in the OpenSSL
    /// backend: signed by the issuer (or a responder it delegated to, or one the trust
    /// roots vouch for), about the leaf, current within five minutes.
    static func checkOCSP(response der: [UInt8], chain: [[UInt8]],
                          trust: gnutls_certificate_credentials_t) -> TLSOCSPVerdict {
        var responseOrNil: gnutls_ocsp_resp_t?
        guard gnutls_ocsp_resp_init(&responseOrNil) >= 0, let response = responseOrNil else {
            return .invalid("gnutls_ocsp_resp_init failed")
        }
        defer { gnutls_ocsp_resp_deinit(response) }
        let imported = GnuTLS.withDatum(der) { gnutls_ocsp_resp_import(response, $0) }
        guard imported >= 0 else { return .invalid("not a DER OCSP response: \(GnuTLS.describe(imported))") }
        let status = gnutls_ocsp_resp_get_status(response)
        guard status == Int32(GNUTLS_OCSP_RESP_SUCCESSFUL.rawValue) else { return .invalid("response status \(status)") }

        var certificates: [gnutls_x509_crt_t] = []
        defer { certificates.forEach { gnutls_x509_crt_deinit($0) } }
        for der in chain {
            var certificate: gnutls_x509_crt_t?
            guard gnutls_x509_crt_init(&certificate) >= 0, let certificate else { break }
            certificates.append(certificate)
            if GnuTLS.withDatum(der, { gnutls_x509_crt_import(certificate, $0, GNUTLS_X509_FMT_DER) }) < 0 {
                return .invalid("cannot parse the peer's certificate chain")
            }
        }
        guard let leaf = certificates.first else { return .invalid("no peer certificate") }

        // The signature: by the issuer sent after the leaf, else by the trust roots.
        var verified = false
        var reason: UInt32 = 0
        if certificates.count >= 2 {
            var verify: UInt32 = 0
            if gnutls_ocsp_resp_verify_direct(response, certificates[1], &verify, 0) >= 0 {
                verified = verify == 0
                reason = verify
            }
        }
        if !verified {
            var list: gnutls_x509_trust_list_t?
            gnutls_certificate_get_trust_list(trust, &list)
            var verify: UInt32 = 0
            if let list, gnutls_ocsp_resp_verify(response, list, &verify, 0) >= 0 {
                verified = verify == 0
                if !verified { reason = verify }
            }
        }
        guard verified else { return .invalid("signature not verified (GnuTLS OCSP verify status 0x\(String(reason, radix: 16)))") }
        guard certificates.count >= 2 else { return .invalid("cannot identify the leaf's issuer") }

        // The single response about the leaf.
        var index: UInt32 = 0
        while true {
            var certificateStatus: UInt32 = 0
            var thisUpdate: time_t = 0, nextUpdate: time_t = 0, revocationTime: time_t = 0
            var reasonCode: UInt32 = 0
            let found = gnutls_ocsp_resp_get_single(response, index, nil, nil, nil, nil, &certificateStatus,
                                                    &thisUpdate, &nextUpdate, &revocationTime, &reasonCode)
            if found < 0 { return .invalid("the response does not cover the server's certificate") }
            if gnutls_ocsp_resp_check_crt(response, index, leaf) >= 0 {
                let now = time(nil), leeway: time_t = 300
                if thisUpdate > now + leeway { return .invalid("the response is not yet valid") }
                if nextUpdate != -1 && nextUpdate < now - leeway { return .invalid("the response is out of date") }
                switch certificateStatus {
                case GNUTLS_OCSP_CERT_GOOD.rawValue: return .good
                case GNUTLS_OCSP_CERT_REVOKED.rawValue: return .revoked
                default: return .invalid("certificate status unknown")
                }
            }
            index += 1
        }
    }
}
#endif
