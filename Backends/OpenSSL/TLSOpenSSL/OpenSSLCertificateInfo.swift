#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Certificate parsing with libcrypto.
enum OpenSSLCertificateParser {
    static func info(der: [UInt8]) throws -> TLSCertificateInfo {
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_X509(nil, &cursor, buffer.count)
        }
        guard let certificate = parsed else {
            throw TLSError(.badCertificate, "not a DER certificate: \(OpenSSLErrorQueue.drainText())", backend: OpenSSLBackend.id)
        }
        defer { X509_free(certificate) }
        return info(certificate, der: der)
    }

    /// Reads a parsed certificate; `der` is its encoding (for the fingerprint).
    static func info(_ certificate: OpaquePointer, der: [UInt8]? = nil) -> TLSCertificateInfo {
        let encoded = der ?? OpenSSLPEM.der(certificate)
        // SANs are read once, by TLSCore, for both backends and for host-name checks:
        // a DNS name with a NUL inside is kept whole (so it never matches a host).
        let leaf = encoded.withUnsafeBytes { TLSLeafIdentity(der: $0) }
        let dnsNames = leaf?.dnsNames ?? [], ipAddresses = leaf?.ipAddresses ?? []

        var commonName: String?
        let subjectName = X509_get_subject_name(certificate)
        let position = X509_NAME_get_index_by_NID(subjectName, NID_commonName, -1)
        if position >= 0, let entry = X509_NAME_get_entry(subjectName, position),
           let data = X509_NAME_ENTRY_get_data(entry) {
            var utf8: UnsafeMutablePointer<UInt8>?
            let length = ASN1_STRING_to_UTF8(&utf8, data)
            if length >= 0, let utf8 {
                commonName = TLSUntrustedText.decode(UnsafeBufferPointer(start: utf8, count: Int(length)))
                tlskit_OPENSSL_free(utf8)
            }
        }

        var serial = ""
        if let number = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nil) {
            if let hex = BN_bn2hex(number) {
                serial = String(cString: hex).lowercased()
                tlskit_OPENSSL_free(hex)
            }
            BN_free(number)
        }
        if serial.isEmpty { serial = "0" }

        // RFC 7469: the hash of the whole SubjectPublicKeyInfo DER (X509_pubkey_digest
        // would hash the key's BIT STRING only).
        var spki: [UInt8] = []
        if let publicKey = X509_get_X509_PUBKEY(certificate) {
            let length = i2d_X509_PUBKEY(publicKey, nil)
            if length > 0 {
                spki = [UInt8](repeating: 0, count: Int(length))
                spki.withUnsafeMutableBufferPointer { buffer in
                    var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
                    _ = i2d_X509_PUBKEY(publicKey, &cursor)
                }
            }
        }
        let spkiDigest = sha256(spki)

        return TLSCertificateInfo(
            subject: name(X509_get_subject_name(certificate)),
            issuer: name(X509_get_issuer_name(certificate)),
            commonName: commonName, dnsNames: dnsNames, ipAddresses: ipAddresses,
            notValidBefore: epoch(X509_get0_notBefore(certificate)),
            notValidAfter: epoch(X509_get0_notAfter(certificate)),
            serialNumber: serial, sha256Fingerprint: sha256(encoded), spkiSHA256: spkiDigest)
    }

    /// RFC 2253 text of a name (the same form as GnuTLS's RFC 4514 output).
    private static func name(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        X509_NAME_print_ex(bio, name, 0, tlskit_XN_FLAG_RFC2253_UTF8())
        var pointer: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
        guard let pointer, length > 0 else { return "" }
        return TLSUntrustedText.decode(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private static func epoch(_ time: UnsafePointer<ASN1_TIME>?) -> Int64 {
        guard let time else { return 0 }
        var broken = tm()
        guard ASN1_TIME_to_tm(time, &broken) == 1 else { return 0 }
        return Int64(timegm(&broken))
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes(sha256) }

    static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = EVP_Digest(bytes.baseAddress, bytes.count, &digest, &length, EVP_sha256(), nil)
        return digest
    }
}
#endif
