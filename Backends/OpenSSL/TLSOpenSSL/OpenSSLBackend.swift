#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) public import TLSCore

/// The OpenSSL 3 backend (libssl). Enabled by the `OpenSSL` trait (the default).
///
/// ```swift
/// let context = try OpenSSLBackend.makeContext(.makeClientConfiguration())
/// ```
public enum OpenSSLBackend: TLSBackend {
    /// ``TLSBackendID/openSSL``.
    public static let id = TLSBackendID.openSSL

    /// The run-time library version, e.g. `OpenSSL 3.0.19 …`.
    public static var libraryVersion: String {
        String(cString: tlskit_OpenSSL_version_text())
    }

    /// Everything TLSKit's configuration can ask for.
    public static let capabilities: TLSCapabilities = [
        .tls13, .alpn, .serverNameIndication, .mutualTLS, .selfSignedIdentity,
        .alpnSelectionCallback, .cipherSuiteSelection, .groupSelection, .keyLogging, .sessionResumption,
        .multipleTicketKeys, .keyingMaterialExporter, .keyUpdate, .ocspStapling, .customVerification,
        .serverIdentitySelection,
    ]

    /// Builds the OpenSSLContextEngine from a configuration the core has validated and checked
    /// against ``capabilities`` (see ``TLSBackend/makeContext(_:)``).
    @_spi(TLSBackendImplementation)
    public static func makeContextEngine(_ configuration: TLSConfiguration) throws -> any TLSContextEngine {
        try OpenSSLContextEngine(configuration: configuration)
    }

    /// Parses a DER certificate with libcrypto.
    public static func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo {
        try OpenSSLCertificateParser.info(der: der)
    }

    /// Generates an ECDSA P-256 key and a self-signed certificate with OpenSSL (called by
    /// ``TLSBackend/makeSelfSignedIdentity(commonName:subjectAlternativeNames:validityDays:)``).
    @_spi(TLSBackendImplementation)
    public static func generateSelfSignedIdentity(
        commonName: String,
        subjectAlternativeNames: [String],
        validityDays: Int
    ) throws -> TLSIdentity {
        try OpenSSLIdentityFactory.makeSelfSigned(
            commonName: commonName, subjectAlternativeNames: subjectAlternativeNames, validityDays: validityDays)
    }
}

/// Self-signed identities through libcrypto.
enum OpenSSLIdentityFactory {
    static func makeSelfSigned(commonName: String, subjectAlternativeNames: [String], validityDays: Int) throws -> TLSIdentity {
        func failure(_ what: String) -> TLSError {
            TLSError(.internalError, "\(what): \(OpenSSLErrorQueue.drainText())", backend: OpenSSLBackend.id)
        }
        ERR_clear_error()
        guard let key = tlskit_EVP_EC_gen("P-256") else { throw failure("EC key generation failed") }
        defer { EVP_PKEY_free(key) }
        guard let cert = X509_new() else { throw failure("X509_new failed") }
        defer { X509_free(cert) }

        X509_set_version(cert, 2)
        var serial = [UInt8](repeating: 0, count: 16)
        guard RAND_bytes(&serial, 16) == 1 else { throw failure("RAND_bytes failed") }
        serial[0] &= 0x7F
        guard let serialBN = BN_bin2bn(serial, 16, nil) else { throw failure("BN_bin2bn failed") }
        defer { BN_free(serialBN) }
        BN_to_ASN1_INTEGER(serialBN, X509_get_serialNumber(cert))
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600)
        X509_gmtime_adj(X509_getm_notAfter(cert), Int(validityDays) * 86_400)

        guard let name = X509_get_subject_name(cert),
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, commonName, -1, -1, 0) == 1,
              X509_set_issuer_name(cert, name) == 1,
              X509_set_pubkey(cert, key) == 1
        else { throw failure("cannot set the certificate's names or key") }

        var extensions: [(Int32, String)] = [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, "serverAuth,clientAuth"),
            (NID_subject_key_identifier, "hash"),
        ]
        if !subjectAlternativeNames.isEmpty {
            let sans = subjectAlternativeNames.map { name in
                TLSHostName.isIPAddress(name) ? "IP:" + TLSHostName.verificationName(name) : "DNS:" + name
            }
            extensions.append((NID_subject_alt_name, sans.joined(separator: ",")))
        }
        for (nid, value) in extensions where tlskit_X509_add_ext_text(cert, nid, value) != 1 {
            throw failure("cannot add extension \(value)")
        }
        guard X509_sign(cert, key, EVP_sha256()) > 0 else { throw failure("X509_sign failed") }

        let certificatePEM = try OpenSSLPEM.write { PEM_write_bio_X509($0, cert) }
        let keyPEM = try OpenSSLPEM.write { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        return TLSIdentity(certificateChainPEM: certificatePEM, privateKeyPEM: keyPEM)
    }
}

/// PEM and DER through memory BIOs.
enum OpenSSLPEM {
    /// Runs a `PEM_write_bio_*` call into a memory BIO and returns the text.
    static func write(_ body: (OpaquePointer) -> Int32) throws -> String {
        guard let bio = BIO_new(BIO_s_mem()) else {
            throw TLSError(.internalError, "BIO_new failed", backend: OpenSSLBackend.id)
        }
        defer { BIO_free(bio) }
        guard body(bio) == 1 else {
            throw TLSError(.internalError, "PEM write failed: \(OpenSSLErrorQueue.drainText())", backend: OpenSSLBackend.id)
        }
        var pointer: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
        guard let pointer, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// Every certificate in a PEM text, in order; or the one certificate of DER bytes.
    static func readCertificates(_ bytes: [UInt8]) -> [OpaquePointer] {
        readAll(bytes, pem: { PEM_read_bio_X509($0, nil, nil, nil) }, der: { d2i_X509_bio($0, nil) })
    }

    /// Every CRL in a PEM text, or the one CRL of DER bytes.
    static func readCRLs(_ bytes: [UInt8]) -> [OpaquePointer] {
        readAll(bytes, pem: { PEM_read_bio_X509_CRL($0, nil, nil, nil) }, der: { d2i_X509_CRL_bio($0, nil) })
    }

    private static func readAll(_ bytes: [UInt8], pem: (OpaquePointer) -> OpaquePointer?,
                                der: (OpaquePointer) -> OpaquePointer?) -> [OpaquePointer] {
        let isPEM = TLSDataSource.isPEM(bytes)
        return bytes.withUnsafeBytes { raw -> [OpaquePointer] in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return [] }
            defer { BIO_free(bio) }
            var items: [OpaquePointer] = []
            if isPEM {
                while let item = pem(bio) { items.append(item) }
            } else if let item = der(bio) {
                items.append(item)
            }
            ERR_clear_error()  // a PEM loop always ends on "no start line"
            return items
        }
    }

    /// The DER inside PEM armour (the first block), for PEM-wrapped PKCS#12.
    static func decodeArmour(_ bytes: [UInt8]) -> [UInt8] {
        let lines = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" })
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN") }),
              let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END") }) else { return [] }
        let base64 = Array(lines[(begin + 1)..<end].joined().utf8)
        var output = [UInt8](repeating: 0, count: base64.count)
        let length = EVP_DecodeBlock(&output, base64, Int32(base64.count))
        guard length >= 0 else { return [] }
        let padding = base64.reversed().prefix(while: { $0 == UInt8(ascii: "=") }).count
        return Array(output.prefix(max(0, Int(length) - padding)))
    }

    /// The DER encoding of a certificate.
    static func der(_ cert: OpaquePointer) -> [UInt8] {
        let length = i2d_X509(cert, nil)
        guard length > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(length))
        bytes.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_X509(cert, &cursor)
        }
        return bytes
    }
}
#endif
