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

/// The backends built into this build of TLSKit, by trait (named apart from the
/// ``TLSBackend`` protocol they conform to).
public enum TLSBuiltInBackends {
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
