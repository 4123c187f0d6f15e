@_exported public import TLSCore
#if OpenSSL
@_exported public import TLSOpenSSL
#endif
#if GnuTLS
@_exported public import TLSGnuTLS
#endif

#if OpenSSL
/// The backend this build of TLSKit uses: OpenSSL (the default trait, and the choice
/// when both traits are enabled). Write code against `DefaultTLSBackend` and switch
/// provider with `--traits GnuTLS`, never with a code change.
public typealias DefaultTLSBackend = OpenSSLBackend
#elseif GnuTLS
/// The backend this build of TLSKit uses: GnuTLS (the `GnuTLS` trait alone). Write code
/// against `DefaultTLSBackend` and switch provider with a build flag.
public typealias DefaultTLSBackend = GnuTLSBackend
#else
#error("TLSKit needs a backend: enable the OpenSSL trait (the default) or the GnuTLS trait, e.g. `swift build --traits GnuTLS`.")
#endif

/// The backends compiled into this build.
public enum TLSBackends {
    /// Every enabled backend, the default first.
    public static var available: [any TLSBackend.Type] {
        var backends: [any TLSBackend.Type] = []
        #if OpenSSL
        backends.append(OpenSSLBackend.self)
        #endif
        #if GnuTLS
        backends.append(GnuTLSBackend.self)
        #endif
        return backends
    }
}

/// Where a non-blocking handshake stands.
public enum TLSProgress: Sendable, Hashable {
    /// The handshake is complete.
    case complete
    /// Call again once the transport has bytes to read.
    case wantRead
    /// Call again once the transport can take bytes.
    case wantWrite
    /// Call again once the custom verification callback has answered
    /// (``TLSResultCode/wantRetryVerify``; see ``TLSConnection/verificationWakeUp``).
    case wantRetryVerify
}

extension TLSConnection {
    /// One handshake step in Swift style: the role must be set (or use ``TLSSocket``).
    /// - Returns: ``TLSProgress/complete`` when done, or what the transport needs first.
    /// - Throws: ``TLSError`` on failure; ``TLSError/Code/closedByPeer`` when the peer
    ///   closed the session cleanly during the handshake.
    public func handshake() throws -> TLSProgress {
        let result = doHandshake()
        if result == 1 { return .complete }
        switch error(for: result) {
        case .wantRead: return .wantRead
        case .wantWrite: return .wantWrite
        case .wantRetryVerify: return .wantRetryVerify
        case .zeroReturn:
            throw TLSError(.closedByPeer, "the peer closed the session (close_notify) during the handshake",
                           backend: context.backendID)
        case .none, .ssl, .syscall:
            throw lastError ?? TLSError(.internalError, "handshake failed with result \(result)",
                                        backend: context.backendID)
        }
    }
}
