#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// Certificate parsing with gnutls_x509_crt.
enum GnuTLSCertificateParser {
    static func info(der: [UInt8]) throws -> TLSCertificateInfo {
        var certificateOrNil: gnutls_x509_crt_t?
        guard gnutls_x509_crt_init(&certificateOrNil) >= 0, let certificate = certificateOrNil else {
            throw GnuTLS.error(.internalError, "gnutls_x509_crt_init failed")
        }
        defer { gnutls_x509_crt_deinit(certificate) }
        let imported = GnuTLS.withDatum(der) { gnutls_x509_crt_import(certificate, $0, GNUTLS_X509_FMT_DER) }
        guard imported >= 0 else { throw GnuTLS.error(.badCertificate, "not a DER certificate", imported) }

        func distinguishedName(_ read: (UnsafeMutablePointer<gnutls_datum_t>) -> Int32) -> String {
            var datum = gnutls_datum_t(data: nil, size: 0)
            guard read(&datum) >= 0 else { return "" }
            return TLSUntrustedText.decode(GnuTLS.consume(&datum))
        }
        let flags = UInt32(GNUTLS_X509_DN_FLAG_COMPAT)
        let subject = distinguishedName { gnutls_x509_crt_get_dn3(certificate, $0, flags) }
        let issuer = distinguishedName { gnutls_x509_crt_get_issuer_dn3(certificate, $0, flags) }

        // The first CN as the host-name check reads it: gnutls_x509_crt_get_dn_by_oid
        // gives a CN holding a control character as RFC 4514 hex (`#0c10…`) instead.
        // SANs too are read once, by TLSCore, for both backends and for host-name
        // checks: a DNS name with a NUL inside is kept whole (so it never matches a host).
        let leaf = der.withUnsafeBytes { TLSLeafIdentity(der: $0) }
        let commonName = leaf?.commonName
        let dnsNames = leaf?.dnsNames ?? [], ipAddresses = leaf?.ipAddresses ?? []

        var serial = [UInt8](repeating: 0, count: 64)
        var serialSize = serial.count
        _ = gnutls_x509_crt_get_serial(certificate, &serial, &serialSize)
        var serialBytes = Array(serial.prefix(serialSize))
        while serialBytes.count > 1 && serialBytes.first == 0 { serialBytes.removeFirst() }

        var spki: [UInt8] = []
        var publicKey: gnutls_pubkey_t?
        if gnutls_pubkey_init(&publicKey) >= 0, let publicKey {
            defer { gnutls_pubkey_deinit(publicKey) }
            var exported = gnutls_datum_t(data: nil, size: 0)
            if gnutls_pubkey_import_x509(publicKey, certificate, 0) >= 0,
               gnutls_pubkey_export2(publicKey, GNUTLS_X509_FMT_DER, &exported) >= 0 {
                spki = GnuTLS.consume(&exported)
            }
        }

        return TLSCertificateInfo(
            subject: subject, issuer: issuer, commonName: commonName,
            dnsNames: dnsNames, ipAddresses: ipAddresses,
            notValidBefore: Int64(gnutls_x509_crt_get_activation_time(certificate)),
            notValidAfter: Int64(gnutls_x509_crt_get_expiration_time(certificate)),
            serialNumber: serialBytes.map { hexByte($0) }.joined(),
            sha256Fingerprint: sha256(der), spkiSHA256: sha256(spki))
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes(sha256) }

    static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        _ = gnutls_hash_fast(GNUTLS_DIG_SHA256, bytes.baseAddress, bytes.count, &digest)
        return digest
    }

    private static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
#endif
