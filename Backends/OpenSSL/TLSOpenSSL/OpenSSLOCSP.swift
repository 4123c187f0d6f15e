#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore

/// Checks a stapled OCSP response against the peer's chain and trust store; what the
/// client does with the verdict is the core's (`TLSOCSPRefusal.judge`).
enum OpenSSLOCSP {
    static func check(response der: [UInt8], ssl: OpaquePointer) -> TLSOCSPVerdict {
        defer { ERR_clear_error() }
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_OCSP_RESPONSE(nil, &cursor, buffer.count)
        }
        guard let response = parsed else { return .invalid("not a DER OCSP response") }
        defer { OCSP_RESPONSE_free(response) }
        guard OCSP_response_status(response) == OCSP_RESPONSE_STATUS_SUCCESSFUL else {
            return .invalid("response status \(OCSP_response_status(response))")
        }
        guard let basic = OCSP_response_get1_basic(response) else { return .invalid("no basic response") }
        defer { OCSP_BASICRESP_free(basic) }
        guard let chain = SSL_get_peer_cert_chain(ssl), tlskit_sk_X509_num(chain) >= 1,
              let leaf = tlskit_sk_X509_value(chain, 0) else { return .invalid("no peer certificate") }
        let store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl))
        guard OCSP_basic_verify(basic, chain, store, 0) == 1 else {
            return .invalid("signature not verified: \(OpenSSLErrorQueue.drainText())")
        }
        // The issuer: next in the chain the peer sent.
        guard tlskit_sk_X509_num(chain) >= 2, let issuer = tlskit_sk_X509_value(chain, 1),
              let id = OCSP_cert_to_id(nil, leaf, issuer) else { return .invalid("cannot identify the leaf's issuer") }
        defer { OCSP_CERTID_free(id) }
        var status: Int32 = -1, reason: Int32 = -1
        var revokedAt: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var thisUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?, nextUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        guard OCSP_resp_find_status(basic, id, &status, &reason, &revokedAt, &thisUpdate, &nextUpdate) == 1 else {
            return .invalid("the response does not cover the server's certificate")
        }
        guard OCSP_check_validity(thisUpdate, nextUpdate, 300, -1) == 1 else { return .invalid("the response is out of date") }
        switch status {
        case V_OCSP_CERTSTATUS_GOOD: return .good
        case V_OCSP_CERTSTATUS_REVOKED: return .revoked
        default: return .invalid("certificate status unknown")
        }
    }
}
#endif
