#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore

/// The one record TLSKit protects itself: the fatal alert of a TLS 1.3 client whose
/// verification failed before libssl 3.0 had its handshake write keys
/// (``OpenSSLConnectionEngine/deferVerificationFailure()``). RFC 8446 §5.2 and §7.3:
/// key and IV by HKDF-Expand-Label from the client handshake traffic secret, the
/// TLSInnerPlaintext `alert || 21`, sequence number 0 (libssl's own records under these
/// keys were refused before they left), the record header as additional data.
enum OpenSSLRecordProtection {
    /// `TLS_AES_128_GCM_SHA256`, `TLS_AES_256_GCM_SHA384`, `TLS_CHACHA20_POLY1305_SHA256`:
    /// the AEADs with a 12-byte nonce and a 16-byte tag set up by one EVP sequence. With
    /// a CCM suite (never enabled by default) the alert goes out unprotected, as before.
    static let supportedSuites: Set<UInt16> = [0x1301, 0x1302, 0x1303]

    /// The protected alert record (23 03 03 00 13, then 19 bytes), or nil.
    static func tls13AlertRecord(_ alert: TLSAlert, secret: [UInt8], cipher: OpaquePointer) -> [UInt8]? {
        guard supportedSuites.contains(SSL_CIPHER_get_protocol_id(cipher)),
              let md = SSL_CIPHER_get_handshake_digest(cipher),
              let name = OBJ_nid2sn(SSL_CIPHER_get_cipher_nid(cipher)),
              let aead = EVP_get_cipherbyname(name)
        else { return nil }
        let keyLength = Int(EVP_CIPHER_get_key_length(aead))
        guard let key = expandLabel(md: md, secret: secret, label: "key", length: keyLength),
              let iv = expandLabel(md: md, secret: secret, label: "iv", length: 12)
        else { return nil }
        let plaintext: [UInt8] = [2, alert.rawValue, TLSWire.ContentType.alert.rawValue]
        let tagLength = 16
        let header: [UInt8] = [TLSWire.ContentType.applicationData.rawValue, 0x03, 0x03,
                               0x00, UInt8(plaintext.count + tagLength)]
        guard let context = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(context) }
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count)
        var final = [UInt8](repeating: 0, count: 32)
        var tag = [UInt8](repeating: 0, count: tagLength)
        var length: Int32 = 0
        // The nonce is the IV XOR the sequence number, 0 here: the IV itself.
        guard EVP_EncryptInit_ex(context, aead, nil, nil, nil) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, 12, nil) == 1,
              EVP_EncryptInit_ex(context, nil, nil, key, iv) == 1,
              EVP_EncryptUpdate(context, nil, &length, header, Int32(header.count)) == 1,
              EVP_EncryptUpdate(context, &ciphertext, &length, plaintext, Int32(plaintext.count)) == 1,
              length == Int32(plaintext.count),
              EVP_EncryptFinal_ex(context, &final, &length) == 1, length == 0,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(tagLength), &tag) == 1
        else { ERR_clear_error(); return nil }
        return header + ciphertext + tag
    }

    /// HKDF-Expand-Label(secret, label, "", length) for a length within one hash block
    /// (RFC 8446 §7.1; HKDF-Expand's T(1) = HMAC(secret, info || 0x01)).
    static func expandLabel(md: OpaquePointer, secret: [UInt8], label: String, length: Int) -> [UInt8]? {
        let fullLabel = Array("tls13 \(label)".utf8)
        let info: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff), UInt8(fullLabel.count)] + fullLabel + [0x00, 0x01]
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outputLength: UInt32 = 0
        guard length <= Int(EVP_MD_get_size(md)),
              HMAC(md, secret, Int32(secret.count), info, info.count, &output, &outputLength) != nil,
              Int(outputLength) >= length
        else { return nil }
        return Array(output.prefix(length))
    }

    /// Bytes from hexadecimal text (a key-log field); nil if it is not hexadecimal.
    static func bytes<S: StringProtocol>(hex: S) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0, !digits.isEmpty else { return nil }
        var result: [UInt8] = []
        result.reserveCapacity(digits.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            result.append(high << 4 | low)
        }
        return result
    }
}
#endif
