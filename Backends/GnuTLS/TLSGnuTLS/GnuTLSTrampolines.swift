#if GnuTLS
internal import CGnuTLS
@_spi(TLSBackendImplementation) internal import TLSCore

// The C function pointers GnuTLS calls: each recovers the engine from its opaque
// pointer and forwards. `@convention(c)` functions cannot capture, hence free functions.

func engine(from pointer: UnsafeMutableRawPointer?) -> GnuTLSConnectionEngine? {
    guard let pointer else { return nil }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue()
}

func gnuTLSPush(_ pointer: UnsafeMutableRawPointer?, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    guard let owner = engine(from: pointer) else { return -1 }
    return owner.push(bytes, count)
}

func gnuTLSVectorPush(_ pointer: UnsafeMutableRawPointer?, _ vectors: UnsafePointer<giovec_t>?, _ count: Int32) -> Int {
    guard let owner = engine(from: pointer) else { return -1 }
    return owner.push(vectors: vectors, count)
}

func gnuTLSPull(_ pointer: UnsafeMutableRawPointer?, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    guard let owner = engine(from: pointer) else { return -1 }
    return owner.pull(buffer, count)
}

func gnuTLSVerifyPeer(_ session: gnutls_session_t?) -> Int32 {
    guard let session, let pointer = gnutls_session_get_ptr(session) else { return GNUTLS_E_INTERNAL_ERROR }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue().verifyPeer()
}

func gnuTLSPostClientHello(_ session: gnutls_session_t?) -> Int32 {
    guard let session, let pointer = gnutls_session_get_ptr(session) else { return GNUTLS_E_INTERNAL_ERROR }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue().selectCredentialsForServerName()
}

func gnuTLSClientHelloHook(
    _ session: gnutls_session_t?, _ type: UInt32, _ when: UInt32, _ incoming: UInt32,
    _ message: UnsafePointer<gnutls_datum_t>?
) -> Int32 {
    guard let session, let message, incoming != 0, let pointer = gnutls_session_get_ptr(session) else { return 0 }
    return Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue().checkClientHello(message.pointee)
}

func gnuTLSKeyLog(
    _ session: gnutls_session_t?, _ label: UnsafePointer<CChar>?, _ secret: UnsafePointer<gnutls_datum_t>?
) -> Int32 {
    guard let session, let label, let secret, let pointer = gnutls_session_get_ptr(session) else { return 0 }
    Unmanaged<GnuTLSConnectionEngine>.fromOpaque(pointer).takeUnretainedValue()
        .logKey(label: String(cString: label), secret: GnuTLS.copy(secret.pointee))
    return 0
}

func gnuTLSPullTimeout(_ pointer: UnsafeMutableRawPointer?, _ milliseconds: UInt32) -> Int32 {
    1
}
#endif
