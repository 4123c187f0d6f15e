#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

/// The path GnuTLS verified, rebuilt from the certificates the peer sent and the trust
/// list, for the two questions `gnutls_certificate_verify_peers` does not answer:
/// whether the trust anchor it stopped at is a self-signed root (partial chains), and
/// which signer constraint a GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE is about (a name
/// constraint, or the issuer's keyCertSign / path length).
final class GnuTLSChainPath {
    /// The peer's certificates, leaf first, then the trusted issuers found above the
    /// first one whose issuer is in the trust list, up to a self-issued one.
    private(set) var certificates: [gnutls_x509_crt_t] = []
    /// Index in ``certificates`` of the first certificate taken from the trust list
    /// (the anchor GnuTLS uses); nil when no sent certificate's issuer is trusted (a sent
    /// certificate is then itself in the trust list).
    private(set) var anchorIndex: Int?
    /// The certificates of the path that are ours to deinit: the imported peer
    /// certificates. The trusted issuers are the trust list's own (borrowed, not
    /// copied), except those a PKCS #11 trust module could only hand out as copies.
    private var owned: [gnutls_x509_crt_t] = []

    init(peer list: UnsafePointer<gnutls_datum_t>, count: Int, trust: gnutls_x509_trust_list_t?) {
        for index in 0..<count {
            var certificate: gnutls_x509_crt_t?
            guard gnutls_x509_crt_init(&certificate) >= 0, let certificate else { return }
            guard gnutls_x509_crt_import(certificate, list + index, GNUTLS_X509_FMT_DER) >= 0 else {
                gnutls_x509_crt_deinit(certificate)
                return
            }
            certificates.append(certificate)
            owned.append(certificate)
        }
        guard let trust else { return }
        // GnuTLS stops at the first sent certificate whose issuer (or itself) is trusted.
        for index in certificates.indices {
            var issuer = trustedIssuer(of: certificates[index], in: trust)
            guard issuer != nil else { continue }
            certificates.removeSubrange((index + 1)...)
            anchorIndex = index + 1
            // Then up through the trust list, as OpenSSL would, to a self-issued root.
            while let current = issuer, certificates.count < 32 {
                certificates.append(current)
                if Self.isSelfIssued(current) { break }
                issuer = trustedIssuer(of: current, in: trust)
            }
            return
        }
    }

    deinit { owned.forEach { gnutls_x509_crt_deinit($0) } }

    /// True when the path ends at a self-issued certificate taken from the trust list:
    /// a full chain to a root, not one that stops at a trusted intermediate (or leaf).
    var reachesTrustedRoot: Bool {
        guard anchorIndex != nil, let last = certificates.last else {
            // A sent certificate is itself trusted: a root only if it is self-issued
            // (a lone self-signed certificate placed in the trust roots).
            return certificates.count == 1 && Self.isSelfIssued(certificates[0])
        }
        return Self.isSelfIssued(last)
    }

    /// True when a certificate of the path names a DNS name, IP address or e-mail
    /// address outside the nameConstraints of a CA above it.
    var violatesNameConstraints: Bool {
        for (caIndex, ca) in certificates.enumerated() where caIndex > 0 {
            var constraints: gnutls_x509_name_constraints_t?
            guard gnutls_x509_name_constraints_init(&constraints) >= 0, let constraints else { continue }
            defer { gnutls_x509_name_constraints_deinit(constraints) }
            var critical: UInt32 = 0
            guard gnutls_x509_crt_get_name_constraints(ca, constraints, 0, &critical) >= 0 else { continue }
            for subject in certificates[..<caIndex] {
                for type in [GNUTLS_SAN_DNSNAME, GNUTLS_SAN_IPADDRESS, GNUTLS_SAN_RFC822NAME]
                where gnutls_x509_name_constraints_check_crt(constraints, type, subject) == 0 {
                    return true
                }
            }
        }
        return false
    }

    /// The trusted issuer of `certificate`, or nil. Without GNUTLS_TL_GET_COPY the list
    /// hands out its own certificate (valid as long as the credentials, which outlive
    /// this path), without the export and re-import a copy costs; only a PKCS #11
    /// trust module refuses that, and is then asked for a copy (owned here).
    private func trustedIssuer(of certificate: gnutls_x509_crt_t, in trust: gnutls_x509_trust_list_t) -> gnutls_x509_crt_t? {
        var issuer: gnutls_x509_crt_t?
        if gnutls_x509_trust_list_get_issuer(trust, certificate, &issuer, 0) >= 0, let issuer { return issuer }
        issuer = nil
        guard gnutls_x509_trust_list_get_issuer(trust, certificate, &issuer, UInt32(GNUTLS_TL_GET_COPY)) >= 0,
              let issuer else { return nil }
        owned.append(issuer)
        return issuer
    }

    static func isSelfIssued(_ certificate: gnutls_x509_crt_t) -> Bool {
        gnutls_x509_crt_check_issuer(certificate, certificate) != 0
    }
}
#endif
