#if NIO
public import NIOCore
public import TLSCore

extension ChannelPipeline.SynchronousOperations {
    /// What the channel's TLSKit handler negotiated (version, cipher suite, ALPN, the
    /// peer's chain and how it was verified); nil before the handshake completes.
    /// Call on the channel's event loop.
    /// - Throws: `ChannelPipelineError.notFound` when the pipeline has no TLSKit handler.
    public func tlsKitConnectionInfo() throws -> TLSKitConnectionInfo? {
        try handler(type: TLSKitHandler.self).connectionInfo
    }

    /// The negotiated TLS version: `nioSSL_tlsVersion()`'s counterpart; nil before the
    /// handshake completes. Call on the channel's event loop.
    /// - Throws: `ChannelPipelineError.notFound` when the pipeline has no TLSKit handler.
    public func tlsKitTLSVersion() throws -> TLSVersion? {
        try handler(type: TLSKitHandler.self).tlsVersion
    }

    /// The peer's leaf certificate, parsed: `nioSSL_peerCertificate()`'s counterpart.
    /// Call on the channel's event loop.
    /// - Throws: `ChannelPipelineError.notFound` when the pipeline has no TLSKit handler.
    public func tlsKitPeerCertificate() throws -> TLSCertificateInfo? {
        try handler(type: TLSKitHandler.self).peerCertificate
    }
}

extension Channel {
    /// What the channel's TLSKit handler negotiated, from any thread; nil before the
    /// handshake completes. Fails with `ChannelPipelineError.notFound` without a handler.
    public func tlsKitConnectionInfo() -> EventLoopFuture<TLSKitConnectionInfo?> {
        eventLoop.submit { [self] in
            try pipeline.syncOperations.tlsKitConnectionInfo()
        }
    }

    /// The peer's leaf certificate, parsed: `nioSSL_peerCertificate()`'s counterpart.
    public func tlsKitPeerCertificate() -> EventLoopFuture<TLSCertificateInfo?> {
        tlsKitConnectionInfo().map { $0?.peerCertificate }
    }

    /// The negotiated TLS version, from any thread: `nioSSL_tlsVersion()`'s counterpart;
    /// nil before the handshake completes. Fails with `ChannelPipelineError.notFound`
    /// without a handler.
    public func tlsKitTLSVersion() -> EventLoopFuture<TLSVersion?> {
        eventLoop.submit { [self] in
            try pipeline.syncOperations.tlsKitTLSVersion()
        }
    }
}

/// Adds a ``TLSKitClientHandler`` to every channel a `NIOClientTCPBootstrap` makes:
/// `NIOSSLClientTLSProvider`'s counterpart.
///
/// ```swift
/// let provider = try TLSKitClientTLSProvider<ClientBootstrap>(context: context, serverHostname: "example.com")
/// let bootstrap = NIOClientTCPBootstrap(ClientBootstrap(group: group), tls: provider).enableTLS()
/// ```
public struct TLSKitClientTLSProvider<Bootstrap: NIOClientTCPBootstrapProtocol>: NIOClientTLSProvider, Sendable {
    /// The bootstrap this provider configures.
    public typealias Bootstrap = Bootstrap

    private let context: TLSContext
    private let serverHostname: String?
    private let shutdownTimeout: TimeAmount
    private let customVerificationCallback: (@Sendable ([[UInt8]], EventLoopPromise<TLSVerificationVerdict>) -> Void)?

    /// Creates the provider.
    /// - Parameter customVerificationCallback: given to every handler it makes (see
    ///   ``TLSKitCustomVerificationCallback``); `@Sendable` because the provider is.
    /// - Throws: `TLSError` with code `invalidConfiguration` for a bad `serverHostname`
    ///   (checked here, so that making the handlers later cannot fail).
    public init(
        context: TLSContext, serverHostname: String?, shutdownTimeout: TimeAmount = .seconds(5),
        customVerificationCallback: (@Sendable ([[UInt8]], EventLoopPromise<TLSVerificationVerdict>) -> Void)? = nil
    ) throws {
        _ = try TLSKitClientHandler(context: context, serverHostname: serverHostname)
        self.context = context
        self.serverHostname = serverHostname
        self.shutdownTimeout = shutdownTimeout
        self.customVerificationCallback = customVerificationCallback
    }

    /// Installs a fresh ``TLSKitClientHandler`` as the first handler of each channel.
    public func enableTLS(_ bootstrap: Bootstrap) -> Bootstrap {
        bootstrap.protocolHandlers { [context, serverHostname, shutdownTimeout, customVerificationCallback] in
            // The host name was checked in init: this cannot throw.
            [try! TLSKitClientHandler(context: context, serverHostname: serverHostname, shutdownTimeout: shutdownTimeout,
                                      customVerificationCallback: customVerificationCallback)]
        }
    }
}
#endif
