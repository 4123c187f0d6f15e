#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) public import TLSCore

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// The GnuTLS 3 provider: TLSKit's contract over the system `libgnutls`.
///
/// Enabled by the `GnuTLS` package trait. Use it by name (`GnuTLSBackend.makeContext(_:)`)
/// or through `DefaultTLSBackend` when it is the only backend built.
public enum GnuTLSBackend: TLSBackend {
    /// ``TLSBackendID/gnuTLS``.
    public static let id = TLSBackendID.gnuTLS

    /// `"GnuTLS "` followed by the version of the `libgnutls` loaded at run time.
    public static var libraryVersion: String {
        guard let version = gnutls_check_version(nil) else { return "GnuTLS (unknown version)" }
        return "GnuTLS " + String(cString: version)
    }

    /// TLS 1.3, ALPN (with a selection callback), SNI, mutual TLS,
    /// self-signed identities, cipher suites and groups by name, key logging, session
    /// resumption, the keying-material exporter, KeyUpdate, OCSP stapling and custom
    /// verification.
    ///
    /// Not ``TLSCapabilities/multipleTicketKeys``: GnuTLS 3.7 protects tickets under one
    /// master key (rotated in time by GnuTLS itself) and cannot accept a ticket made under
    /// an older, configured key.
    public static let capabilities: TLSCapabilities = [
        .tls13, .alpn, .serverNameIndication, .mutualTLS, .selfSignedIdentity,
        .alpnSelectionCallback, .cipherSuiteSelection, .groupSelection, .keyLogging, .sessionResumption,
        .keyingMaterialExporter, .keyUpdate, .ocspStapling, .customVerification, .serverIdentitySelection,
    ]

    /// Builds the GnuTLSContextEngine from a configuration the core has validated and checked
    /// against ``capabilities`` (see ``TLSBackend/makeContext(_:)``).
    @_spi(TLSBackendImplementation)
    public static func makeContextEngine(_ configuration: TLSConfiguration) throws -> any TLSContextEngine {
        try GnuTLSContextEngine(configuration: configuration)
    }

    /// Parses a DER certificate with `gnutls_x509_crt`.
    public static func certificateInfo(der: [UInt8]) throws -> TLSCertificateInfo {
        try GnuTLSCertificateParser.info(der: der)
    }

    /// Generates an ECDSA P-256 key and a self-signed X.509 v3 certificate (SHA-256) for
    /// `commonName` with the given DNS names and IP addresses as subject alternative names,
    /// valid from one hour ago for `validityDays` days, usable for TLS servers and clients.
    /// - Returns: the certificate as PEM and the key as PKCS#8 PEM.
    /// The arguments were checked by the core (`TLSSelfSignedRequest`).
    /// - Throws: ``TLSError`` when GnuTLS fails.
    @_spi(TLSBackendImplementation)
    public static func generateSelfSignedIdentity(
        commonName: String,
        subjectAlternativeNames: [String],
        validityDays: Int
    ) throws -> TLSIdentity {
        func check(_ result: Int32, _ what: String) throws {
            if result < 0 { throw GnuTLS.error(.internalError, what, result) }
        }

        var keyOrNil: gnutls_x509_privkey_t?
        try check(gnutls_x509_privkey_init(&keyOrNil), "gnutls_x509_privkey_init")
        guard let key = keyOrNil else { throw GnuTLS.error(.internalError, "gnutls_x509_privkey_init returned no key") }
        defer { gnutls_x509_privkey_deinit(key) }
        try check(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, tlskit_gnutls_curve_bits_secp256r1(), 0),
                  "generating an ECDSA P-256 key")

        var certificateOrNil: gnutls_x509_crt_t?
        try check(gnutls_x509_crt_init(&certificateOrNil), "gnutls_x509_crt_init")
        guard let certificate = certificateOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_x509_crt_init returned no certificate")
        }
        defer { gnutls_x509_crt_deinit(certificate) }

        try check(gnutls_x509_crt_set_version(certificate, 3), "setting the certificate version")

        var serial = [UInt8](repeating: 0, count: 16)
        try check(serial.withUnsafeMutableBytes { gnutls_rnd(GNUTLS_RND_NONCE, $0.baseAddress, $0.count) },
                  "generating a serial number")
        serial[0] = (serial[0] & 0x7F) | 0x40 // positive, 16 bytes, minimal DER
        try check(serial.withUnsafeBytes { gnutls_x509_crt_set_serial(certificate, $0.baseAddress, $0.count) },
                  "setting the serial number")

        let now = time(nil)
        try check(gnutls_x509_crt_set_activation_time(certificate, now - 3600), "setting the activation time")
        try check(gnutls_x509_crt_set_expiration_time(certificate, now + time_t(validityDays) * 86_400),
                  "setting the expiration time")

        let cn = Array(commonName.utf8)
        try check(cn.withUnsafeBytes {
            gnutls_x509_crt_set_dn_by_oid(certificate, tlskit_gnutls_oid_common_name(), 0, $0.baseAddress, UInt32($0.count))
        }, "setting the subject common name")

        for name in subjectAlternativeNames {
            if let address = TLSHostName.ipAddressBytes(name) {
                try check(address.withUnsafeBytes {
                    gnutls_x509_crt_set_subject_alt_name(certificate, GNUTLS_SAN_IPADDRESS,
                                                         $0.baseAddress, UInt32($0.count), UInt32(GNUTLS_FSAN_APPEND))
                }, "adding the IP address \(name) to the subject alternative names")
            } else {
                let dns = Array(name.utf8)
                try check(dns.withUnsafeBytes {
                    gnutls_x509_crt_set_subject_alt_name(certificate, GNUTLS_SAN_DNSNAME,
                                                         $0.baseAddress, UInt32($0.count), UInt32(GNUTLS_FSAN_APPEND))
                }, "adding the DNS name \(name) to the subject alternative names")
            }
        }

        try check(gnutls_x509_crt_set_basic_constraints(certificate, 0, -1), "setting basicConstraints CA:false")
        try check(gnutls_x509_crt_set_key_usage(certificate, UInt32(GNUTLS_KEY_DIGITAL_SIGNATURE)),
                  "setting keyUsage")
        try check(gnutls_x509_crt_set_key_purpose_oid(certificate, tlskit_gnutls_kp_tls_www_server(), 0),
                  "adding extendedKeyUsage serverAuth")
        try check(gnutls_x509_crt_set_key_purpose_oid(certificate, tlskit_gnutls_kp_tls_www_client(), 0),
                  "adding extendedKeyUsage clientAuth")
        try check(gnutls_x509_crt_set_key(certificate, key), "setting the public key")

        var keyID = [UInt8](repeating: 0, count: 64)
        var keyIDSize = keyID.count
        if gnutls_x509_crt_get_key_id(certificate, 0, &keyID, &keyIDSize) >= 0 {
            try check(gnutls_x509_crt_set_subject_key_id(certificate, keyID, keyIDSize), "setting subjectKeyIdentifier")
        }

        try check(gnutls_x509_crt_sign2(certificate, certificate, key, GNUTLS_DIG_SHA256, 0), "signing the certificate")

        var certificatePEM = gnutls_datum_t(data: nil, size: 0)
        try check(gnutls_x509_crt_export2(certificate, GNUTLS_X509_FMT_PEM, &certificatePEM), "exporting the certificate")
        let certificateBytes = GnuTLS.consume(&certificatePEM)

        var keyPEM = gnutls_datum_t(data: nil, size: 0)
        try check(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nil, UInt32(GNUTLS_PKCS_PLAIN.rawValue), &keyPEM),
                  "exporting the private key as PKCS#8")
        let keyBytes = GnuTLS.consume(&keyPEM)

        return TLSIdentity(
            certificateChainPEM: String(decoding: certificateBytes, as: UTF8.self),
            privateKeyPEM: String(decoding: keyBytes, as: UTF8.self))
    }
}
#endif
