#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// Small helpers shared by the GnuTLS backend's files.
enum GnuTLS {
    /// `gnutls_strerror(code)` as a Swift string.
    static func describe(_ code: Int32) -> String {
        guard let text = gnutls_strerror(code) else { return "GnuTLS error \(code)" }
        return String(cString: text)
    }

    /// A ``TLSError`` whose message is `context: gnutls_strerror(code)`.
    static func error(_ code: TLSError.Code, _ context: String, _ result: Int32,
                      verificationFailure: TLSError.VerificationFailure? = nil,
                      alert: TLSAlert? = nil) -> TLSError {
        TLSError(code, "\(context): \(describe(result))", backend: GnuTLSBackend.id,
                 verificationFailure: verificationFailure, alert: alert)
    }

    /// A ``TLSError`` with a message of our own.
    static func error(_ code: TLSError.Code, _ message: String) -> TLSError {
        TLSError(code, message, backend: GnuTLSBackend.id)
    }

    /// Frees memory that GnuTLS allocated (`gnutls_free`).
    static func free(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return }
        tlskit_gnutls_free(pointer)
    }

    /// Copies a GnuTLS datum's bytes and frees the datum's buffer.
    static func consume(_ datum: inout gnutls_datum_t) -> [UInt8] {
        defer {
            free(datum.data)
            datum.data = nil
            datum.size = 0
        }
        guard let data = datum.data, datum.size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: Int(datum.size)))
    }

    /// Copies a GnuTLS datum's bytes without freeing them.
    static func copy(_ datum: gnutls_datum_t) -> [UInt8] {
        guard let data = datum.data, datum.size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: Int(datum.size)))
    }

    /// Calls `body` with a datum that points at `bytes` (valid only inside `body`).
    static func withDatum<R>(_ bytes: [UInt8], _ body: (UnsafePointer<gnutls_datum_t>) -> R) -> R {
        bytes.withUnsafeBufferPointer { buffer in
            var datum = gnutls_datum_t(
                data: UnsafeMutablePointer(mutating: buffer.baseAddress),
                size: UInt32(clamping: buffer.count))
            return withUnsafePointer(to: &datum) { body($0) }
        }
    }

    /// Several byte strings as an array of datums valid for the duration of `body` only:
    /// the bytes are copied into one buffer that outlives every datum pointing into it.
    static func withDatums<R>(_ items: [[UInt8]], _ body: (UnsafePointer<gnutls_datum_t>, UInt32) -> R) -> R {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, items.reduce(0) { $0 + $1.count }), alignment: 1)
        defer { storage.deallocate() }
        var offset = 0
        var datums: [gnutls_datum_t] = []
        datums.reserveCapacity(items.count)
        for item in items {
            let slice = UnsafeMutableRawBufferPointer(rebasing: storage[offset..<offset + item.count])
            slice.copyBytes(from: item)
            datums.append(gnutls_datum_t(data: slice.baseAddress?.assumingMemoryBound(to: UInt8.self), size: UInt32(clamping: item.count)))
            offset += item.count
        }
        return datums.withUnsafeBufferPointer { body($0.baseAddress!, UInt32(clamping: $0.count)) }
    }
}
#endif
