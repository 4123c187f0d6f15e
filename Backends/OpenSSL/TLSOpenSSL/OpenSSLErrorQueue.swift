#if OpenSSL
internal import COpenSSL
@_spi(TLSBackendImplementation) import TLSCore

/// The thread's OpenSSL error queue, turned into text and TLSKit errors.
enum OpenSSLErrorQueue {
    /// The reason code of the oldest queued error, 0 if none.
    static var firstReason: Int32 {
        let e = ERR_peek_error()
        return e == 0 ? 0 : tlskit_ERR_GET_REASON(e)
    }

    /// Empties the queue, returning its errors as one line.
    static func drainText() -> String {
        var parts: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            ERR_error_string_n(e, &buffer, buffer.count)
            parts.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return parts.isEmpty ? "no error queued" : parts.joined(separator: "; ")
    }
}
#endif
