#if GnuTLS
internal import CGnuTLS
internal import TLSCore

extension GnuTLSContextEngine {
    var capabilities: TLSCapabilities { GnuTLSBackend.capabilities }

    func digest(_ algorithm: TLSHashAlgorithm, _ bytes: [UInt8]) -> [UInt8] {
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
}
#endif
